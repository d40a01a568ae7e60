package user

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/validate"
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

// Profile returns the profile of userID, with the permissions its current
// roles grant, or apierr NotFound.
func (s *Service) Profile(ctx context.Context, userID string) (Profile, error) {
	if !validate.UUID(userID) {
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
