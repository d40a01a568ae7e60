package user

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// Paging of the admin user list.
const (
	ListDefaultLimit = 20
	ListMaxLimit     = 100
)

// knownRoles are the roles an account may hold.
var knownRoles = []string{RoleUser, RoleAdmin}

// AccountView is a user as an administrator sees it.
type AccountView struct {
	ID           string     `json:"id"`
	Username     string     `json:"username"`
	Email        string     `json:"email"`
	Roles        []string   `json:"roles"`
	Status       string     `json:"status"`
	FailedLogins int        `json:"failed_logins"`
	LockedUntil  *time.Time `json:"locked_until,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
}

func viewOf(u User) AccountView {
	roles := u.Roles
	if roles == nil {
		roles = []string{}
	}
	return AccountView{ID: u.ID, Username: u.Username, Email: u.Email, Roles: roles, Status: u.Status,
		FailedLogins: u.FailedLogins, LockedUntil: u.LockedUntil, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

// ListUsersQuery selects a page of users: at most Limit (1–100, 0 means 20)
// whose username or email starts with Q (case-insensitive; empty: all), after
// the page Cursor names (empty: the first page).
type ListUsersQuery struct {
	Limit  int
	Cursor string
	Q      string
}

// UserPage is a page of users in username order; NextCursor is empty on the
// last page.
type UserPage struct {
	Users      []AccountView `json:"users"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

const listUsers = `
SELECT id::text, username, email, roles, status, failed_logins, locked_until, created_at, updated_at
FROM users
WHERE username > $1
  AND ($2 = '' OR username LIKE $2 || '%' ESCAPE '\' OR email LIKE $2 || '%' ESCAPE '\')
ORDER BY username
LIMIT $3`

// likeEscape escapes LIKE's wildcards so that s matches literally.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// ListUsers returns one page of users. A cursor is opaque: the base64url of
// the last username of the previous page. Faults in the query are apierr
// Invalid.
func (s *Service) ListUsers(ctx context.Context, q ListUsersQuery) (UserPage, error) {
	var p validate.Problems
	p.Check(q.Limit >= 0 && q.Limit <= ListMaxLimit, "limit", "must be 1 to 100")
	p.Check(len(q.Q) <= EmailMax && validate.NoControlChars(q.Q), "q", "must be at most 254 characters without control characters")
	after, err := base64.RawURLEncoding.DecodeString(q.Cursor)
	p.Check(err == nil && len(after) <= UsernameMax, "cursor", "is not a cursor this API returned")
	if err := p.Err(); err != nil {
		return UserPage{}, err
	}
	limit := q.Limit
	if limit == 0 {
		limit = ListDefaultLimit
	}
	rows, err := s.pool.Query(ctx, listUsers, string(after), likeEscape(strings.ToLower(q.Q)), limit+1)
	if err != nil {
		return UserPage{}, fmt.Errorf("list users: %w", err)
	}
	users, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (User, error) { return scanUser(row) })
	if err != nil {
		return UserPage{}, fmt.Errorf("list users: %w", err)
	}
	page := UserPage{Users: make([]AccountView, 0, min(len(users), limit))}
	for i, u := range users {
		if i == limit {
			page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(users[i-1].Username))
			break
		}
		page.Users = append(page.Users, viewOf(u))
	}
	return page, nil
}

// RolesRequest is the body of PUT /api/v1/admin/users/{id}/roles.
type RolesRequest struct {
	Roles []string `json:"roles"`
}

// StatusRequest is the body of PUT /api/v1/admin/users/{id}/status.
type StatusRequest struct {
	Status string `json:"status"`
}

const lockUser = `
SELECT id::text, username, email, roles, status, failed_logins, locked_until, created_at, updated_at
FROM users WHERE id = $1 FOR UPDATE`

const updateRoles = `
UPDATE users SET roles = $2, updated_at = now() WHERE id = $1
RETURNING id::text, username, email, roles, status, failed_logins, locked_until, created_at, updated_at`

const updateStatus = `
UPDATE users SET status = $2, updated_at = now() WHERE id = $1
RETURNING id::text, username, email, roles, status, failed_logins, locked_until, created_at, updated_at`

// updateUser runs fn on user id's row, locked, in one transaction. An unknown
// id is apierr NotFound.
func (s *Service) updateUser(ctx context.Context, id string, fn func(tx pgx.Tx, u User) (User, error)) (AccountView, error) {
	if !validate.UUID(id) {
		return AccountView{}, apierr.New(apierr.NotFound, "user not found")
	}
	var out User
	err := db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		u, err := scanUser(tx.QueryRow(ctx, lockUser, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return apierr.New(apierr.NotFound, "user not found")
		}
		if err != nil {
			return fmt.Errorf("lock user %s: %w", id, err)
		}
		out, err = fn(tx, u)
		return err
	})
	if err != nil {
		return AccountView{}, err
	}
	return viewOf(out), nil
}

// SetRoles replaces the roles of user id with req.Roles (each one of user,
// admin; at least one; duplicates dropped) on behalf of admin actor. An
// administrator cannot take the admin role from themselves (apierr
// Conflict), so the platform always keeps the admin who acts. Every access
// token of the user issued before the change is refused from the next
// request on; a refresh issues one with the new roles.
func (s *Service) SetRoles(ctx context.Context, actor auth.Principal, id string, req RolesRequest) (AccountView, error) {
	var p validate.Problems
	p.Check(len(req.Roles) > 0, "roles", "must name at least one role")
	for _, r := range req.Roles {
		p.Check(slices.Contains(knownRoles, r), "roles", fmt.Sprintf("%q is not a role (user, admin)", r))
	}
	if err := p.Err(); err != nil {
		return AccountView{}, err
	}
	roles := slices.Clone(req.Roles)
	slices.Sort(roles)
	roles = slices.Compact(roles)
	var changed bool
	v, err := s.updateUser(ctx, id, func(tx pgx.Tx, u User) (User, error) {
		if u.ID == actor.UserID && slices.Contains(u.Roles, RoleAdmin) && !slices.Contains(roles, RoleAdmin) {
			return User{}, apierr.New(apierr.Conflict, "an administrator cannot remove their own admin role")
		}
		before := slices.Clone(u.Roles)
		slices.Sort(before)
		changed = !slices.Equal(before, roles)
		return scanUser(tx.QueryRow(ctx, updateRoles, id, roles))
	})
	if err != nil || !changed {
		return v, err
	}
	if err := s.revoked.EndUser(ctx, id, s.cfg.AccessTokenTTL); err != nil {
		return AccountView{}, fmt.Errorf("roles of %s changed, but its access tokens could not be ended yet (repeat the request): %w", id, err)
	}
	s.log.InfoContext(ctx, "user roles changed", "user_id", id, "roles", roles, "by", actor.UserID)
	return v, nil
}

// SetStatus sets the status of user id (active or disabled) on behalf of
// admin actor. Disabling revokes every refresh family of the user in the same
// transaction, so no new access token is issued, and then refuses every access
// token issued until then; login refuses a disabled account. An administrator
// cannot disable themselves (apierr Conflict).
func (s *Service) SetStatus(ctx context.Context, actor auth.Principal, id string, req StatusRequest) (AccountView, error) {
	if req.Status != StatusActive && req.Status != StatusDisabled {
		return AccountView{}, apierr.New(apierr.Invalid, "status: must be active or disabled")
	}
	v, err := s.updateUser(ctx, id, func(tx pgx.Tx, u User) (User, error) {
		if u.ID == actor.UserID && req.Status == StatusDisabled {
			return User{}, apierr.New(apierr.Conflict, "an administrator cannot disable their own account")
		}
		if req.Status == StatusDisabled {
			if _, err := tx.Exec(ctx, revokeAllFamilies, id); err != nil {
				return User{}, fmt.Errorf("revoke refresh tokens of %s: %w", id, err)
			}
		}
		return scanUser(tx.QueryRow(ctx, updateStatus, id, req.Status))
	})
	if err != nil {
		return v, err
	}
	if req.Status == StatusDisabled {
		if err := s.revoked.EndUser(ctx, id, s.cfg.AccessTokenTTL); err != nil {
			return AccountView{}, fmt.Errorf("%s disabled, but its access tokens could not be ended yet (repeat the request): %w", id, err)
		}
	}
	s.log.InfoContext(ctx, "user status changed", "user_id", id, "status", req.Status, "by", actor.UserID)
	return v, nil
}
