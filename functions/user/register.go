package user

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// RegisterRequest is the body of POST /api/v1/auth/register.
type RegisterRequest struct {
	Username string `json:"username"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

// Validate returns an apierr Invalid listing every rule req breaks:
// username 3–32 of [a-z0-9_.-] (any case; stored lower-case) and not reserved,
// email a bare address of at most 254 characters, password 10–128 characters,
// no control characters anywhere.
func (req RegisterRequest) Validate() error {
	var p validate.Problems
	checkUsername(&p, req.Username)
	checkEmail(&p, req.Email)
	checkPasswordRules(&p, req.Password)
	return p.Err()
}

const insertUser = `
INSERT INTO users (username, email, password_hash, roles)
VALUES ($1, $2, $3, $4)
RETURNING id::text, username, email, roles, status, failed_logins, locked_until, created_at, updated_at`

const insertQuota = `
INSERT INTO quotas (user_id, max_devices, max_running_devices, max_cpu_cores, max_memory_mb, max_storage_gb,
                    device_max_cpu_cores, device_max_memory_mb, idle_minutes)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`

// uniqueViolation is Postgres' SQLSTATE for a duplicate key.
const uniqueViolation = "23505"

// Register creates an account with role user and the free-tier quota, and
// records EventRegistered, all in one transaction. It returns apierr Invalid
// when req breaks a rule and apierr Conflict when the username or email is
// taken (decided by the unique indexes, so concurrent registrations of one
// name yield exactly one account).
func (s *Service) Register(ctx context.Context, req RegisterRequest) (User, error) {
	if err := req.Validate(); err != nil {
		return User{}, err
	}
	hash, err := hashPassword(ctx, req.Password)
	if err != nil {
		return User{}, fmt.Errorf("register %s: %w", normalizeUsername(req.Username), err)
	}
	var u User
	err = db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		u, err = createUser(ctx, tx, normalizeUsername(req.Username), normalizeEmail(req.Email), hash, []string{RoleUser})
		if err != nil {
			return err
		}
		if s.afterUserInsert != nil {
			if err := s.afterUserInsert(ctx, tx); err != nil {
				return err
			}
		}
		ev, err := events.New(ctx, userevents.EventRegistered, SourceRegister, u.ID, userevents.Registered{
			SchemaVersion: 1, UserID: u.ID, Username: u.Username, Email: u.Email, RegisteredAt: u.CreatedAt.UTC(),
		})
		if err != nil {
			return err
		}
		return outbox.Add(ctx, tx, ev)
	})
	if err != nil {
		return User{}, err
	}
	s.log.InfoContext(ctx, "user registered", "user_id", u.ID)
	return u, nil
}

// createUser inserts a user and its free-tier quota within tx.
func createUser(ctx context.Context, tx pgx.Tx, username, email, hash string, roles []string) (User, error) {
	u, err := scanUser(tx.QueryRow(ctx, insertUser, username, email, hash, roles))
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == uniqueViolation {
			return User{}, apierr.Wrap(apierr.Conflict, err, "username or email is already taken")
		}
		return User{}, fmt.Errorf("insert user %s: %w", username, err)
	}
	l := FreeTier
	if _, err := tx.Exec(ctx, insertQuota, u.ID, l.MaxDevices, l.MaxRunningDevices, l.MaxCPUCores, l.MaxMemoryMB,
		l.MaxStorageGB, l.DeviceMaxCPUCores, l.DeviceMaxMemoryMB, l.IdleMinutes); err != nil {
		return User{}, fmt.Errorf("insert quota of %s: %w", u.ID, err)
	}
	return u, nil
}

func scanUser(row pgx.Row) (User, error) {
	var u User
	var locked *time.Time
	err := row.Scan(&u.ID, &u.Username, &u.Email, &u.Roles, &u.Status, &u.FailedLogins, &locked, &u.CreatedAt, &u.UpdatedAt)
	u.LockedUntil = locked
	return u, err
}
