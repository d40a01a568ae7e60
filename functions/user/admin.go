package user

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// The operator account EnsureAdmin creates.
const (
	AdminUsername = "admin"
	AdminEmail    = "admin@localhost"
)

const selectRolesByUsername = `SELECT roles FROM users WHERE username = $1`

// EnsureAdmin creates the operator account (username admin, email
// admin@localhost, roles admin and user, the free-tier quota) with password
// when it does not exist, and reports whether it did. An existing admin is
// left alone (its password is not reset), so it is safe to call at every
// start and from several replicas at once. It fails when password breaks the
// password rules or when a user named admin exists without the admin role.
func (s *Service) EnsureAdmin(ctx context.Context, password string) (bool, error) {
	var p validate.Problems
	checkPasswordRules(&p, password)
	if err := p.Err(); err != nil {
		return false, fmt.Errorf("admin password: %w", err)
	}
	roles, err := s.adminRoles(ctx)
	if err != nil {
		return false, err
	}
	if roles != nil {
		return false, checkAdminRoles(roles)
	}
	hash, err := hashPassword(ctx, password)
	if err != nil {
		return false, err
	}
	err = db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		// Serialise concurrent starts: the loser waits, then sees the row.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('cloudphone.user.ensure-admin'))`); err != nil {
			return fmt.Errorf("lock admin creation: %w", err)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM users WHERE username = $1`, AdminUsername).Scan(&n); err != nil {
			return fmt.Errorf("look up admin: %w", err)
		}
		if n > 0 {
			return errAdminExists
		}
		_, err := createUser(ctx, tx, AdminUsername, AdminEmail, hash, []string{RoleAdmin, RoleUser})
		return err
	})
	if errors.Is(err, errAdminExists) {
		roles, err := s.adminRoles(ctx)
		if err != nil {
			return false, err
		}
		return false, checkAdminRoles(roles)
	}
	if err != nil {
		return false, fmt.Errorf("create admin: %w", err)
	}
	s.log.InfoContext(ctx, "admin account created", "username", AdminUsername)
	return true, nil
}

var errAdminExists = errors.New("admin exists")

// adminRoles returns the roles of the user named admin, or nil if none exists.
func (s *Service) adminRoles(ctx context.Context) ([]string, error) {
	var roles []string
	err := s.pool.QueryRow(ctx, selectRolesByUsername, AdminUsername).Scan(&roles)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up admin: %w", err)
	}
	if roles == nil {
		roles = []string{}
	}
	return roles, nil
}

func checkAdminRoles(roles []string) error {
	if !slices.Contains(roles, RoleAdmin) {
		return errors.New("a user named admin exists without the admin role")
	}
	return nil
}
