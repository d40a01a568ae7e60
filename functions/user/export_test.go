package user

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// SetAfterUserInsert makes Register run fn inside its transaction right after
// the user row is written.
func SetAfterUserInsert(s *Service, fn func(ctx context.Context, tx pgx.Tx) error) {
	s.afterUserInsert = fn
}

// CheckPassword exposes checkPassword; HashPassword exposes hashPassword.
var (
	CheckPassword = checkPassword
	HashPassword  = hashPassword
	DummyHash     = dummyHash
)
