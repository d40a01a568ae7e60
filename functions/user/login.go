package user

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// LoginRequest is the body of POST /api/v1/auth/login; Login is a username or
// an email address.
type LoginRequest struct {
	Login    string `json:"login"`
	Password string `json:"password"`
}

// Validate checks the shape of req only; whether the credentials are right is
// Login's business.
func (req LoginRequest) Validate() error {
	var p validate.Problems
	p.Check(req.Login != "", "login", "is required")
	p.Check(len(req.Login) <= EmailMax, "login", "must be at most 254 characters")
	p.Check(validate.NoControlChars(req.Login), "login", "must not contain control characters")
	p.Check(req.Password != "", "password", "is required")
	p.Check(utf8.RuneCountInString(req.Password) <= PasswordMax, "password", "must be at most 128 characters")
	return p.Err()
}

// Tokens is the answer to a login or refresh.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"` // always "Bearer"
	ExpiresIn    int    `json:"expires_in"` // seconds the access token lives
}

// errBadCredentials is the one answer to every refused login: wrong password,
// unknown user, locked or disabled account look alike to the caller.
func errBadCredentials(cause string) error {
	return apierr.Wrap(apierr.Unauthorized, errors.New(cause), "invalid login or password")
}

// login lookup: usernames cannot hold '@', so a login matches at most one
// account by username and at most one by email, and never two different ones
// of which one is chosen arbitrarily (an email never equals a username).
const selectLogin = `
SELECT id::text, username, roles, status, password_hash, coalesce(locked_until > now(), false)
FROM users WHERE username = $1 OR email = $1`

const recordLoginFailure = `
UPDATE users SET
    failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END,
    locked_until  = CASE WHEN failed_logins + 1 >= $2 THEN now() + make_interval(secs => $3) ELSE locked_until END,
    updated_at    = now()
WHERE id = $1 AND (locked_until IS NULL OR locked_until <= now())
RETURNING locked_until IS NOT NULL AND locked_until > now()`

// resetLoginFailures succeeds only while the account is active and not locked,
// so a lock set between the read and here still refuses the login.
const resetLoginFailures = `
UPDATE users SET failed_logins = 0, locked_until = NULL, updated_at = now()
WHERE id = $1 AND status = 'active' AND (locked_until IS NULL OR locked_until <= now())
RETURNING username, roles`

// Login checks req's credentials and returns a new access token and a refresh
// token starting a new family. Every refusal is the same apierr Unauthorized
// and costs one password hash, whether the account exists or not. Each wrong
// password counts against the account; LoginMaxFailures in a row lock it for
// LoginLock, during which even the right password is refused.
func (s *Service) Login(ctx context.Context, req LoginRequest) (Tokens, error) {
	if err := req.Validate(); err != nil {
		return Tokens{}, err
	}
	login := normalizeEmail(req.Login) // usernames and emails are both stored lower-case
	var (
		id, username, status, hash string
		roles                      []string
		locked                     bool
	)
	err := s.pool.QueryRow(ctx, selectLogin, login).Scan(&id, &username, &roles, &status, &hash, &locked)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := checkPassword(ctx, dummyHash, req.Password); err != nil && !errors.Is(err, errBadHash) {
			return Tokens{}, err
		}
		return Tokens{}, errBadCredentials("no such account")
	}
	if err != nil {
		return Tokens{}, fmt.Errorf("look up login: %w", err)
	}
	ok, err := checkPassword(ctx, hash, req.Password)
	if err != nil {
		return Tokens{}, fmt.Errorf("check password of %s: %w", id, err)
	}
	switch {
	case status != StatusActive:
		return Tokens{}, errBadCredentials("account disabled")
	case locked:
		return Tokens{}, errBadCredentials("account locked")
	case !ok:
		if err := s.recordFailure(ctx, id); err != nil {
			return Tokens{}, err
		}
		return Tokens{}, errBadCredentials("wrong password")
	}
	var tokens Tokens
	err = db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, resetLoginFailures, id).Scan(&username, &roles)
		if errors.Is(err, pgx.ErrNoRows) {
			return errBadCredentials("account locked or disabled meanwhile")
		}
		if err != nil {
			return fmt.Errorf("reset login failures of %s: %w", id, err)
		}
		tokens, _, err = s.issueTokens(ctx, tx, id, username, roles, "")
		return err
	})
	if err != nil {
		return Tokens{}, err
	}
	s.log.InfoContext(ctx, "user logged in", "user_id", id)
	return tokens, nil
}

func (s *Service) recordFailure(ctx context.Context, userID string) error {
	var nowLocked bool
	err := db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		// Not waiting for the WAL flush keeps a wrong password about as fast
		// as an unknown user (no timing oracle); a crash may forget a count.
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit TO off`); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, recordLoginFailure, userID, s.cfg.LoginMaxFailures, s.cfg.LoginLock.Seconds()).Scan(&nowLocked)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("record failed login of %s: %w", userID, err)
	}
	if nowLocked {
		s.log.WarnContext(ctx, "account locked after failed logins", "user_id", userID, "lock", s.cfg.LoginLock.String())
	}
	return nil
}
