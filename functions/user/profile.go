package user

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/shared/apierr"
)

// Profile is what GET /api/v1/users/me shows a user about themselves.
type Profile struct {
	ID          string    `json:"id"`
	Username    string    `json:"username"`
	Email       string    `json:"email"`
	Roles       []string  `json:"roles"`
	Permissions []string  `json:"permissions"`
	Status      string    `json:"status"`
	CreatedAt   time.Time `json:"created_at"`
}

const selectUser = `
SELECT id::text, username, email, roles, status, failed_logins, locked_until, created_at, updated_at
FROM users WHERE id = $1`

// isUUID reports whether s is a UUID in its canonical form, 8-4-4-4-12 hex
// digits of either case. (By hand rather than with a regexp: compiling one
// at init would delay every start of the context's functions.)
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// Profile returns the profile of userID, with the permissions its current
// roles grant, or apierr NotFound.
func (s *Service) Profile(ctx context.Context, userID string) (Profile, error) {
	if !isUUID(userID) {
		return Profile{}, apierr.New(apierr.NotFound, "user not found")
	}
	u, err := scanUser(s.pool.QueryRow(ctx, selectUser, userID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Profile{}, apierr.New(apierr.NotFound, "user not found")
	}
	if err != nil {
		return Profile{}, fmt.Errorf("read user %s: %w", userID, err)
	}
	return Profile{
		ID: u.ID, Username: u.Username, Email: u.Email, Roles: u.Roles, Permissions: Permissions(u.Roles),
		Status: u.Status, CreatedAt: u.CreatedAt,
	}, nil
}
