// Package user is the accounts context: registration, login with
// lock-out, rotating refresh tokens with reuse detection, logout, profiles,
// quotas (reservations per device, plan grants by command event) and user
// administration, on the database cloudphone_user. Its functions (register,
// login, refresh, logout, profile, quotainternal, quotagrants, adminusers) are
// thin wrappers around Service.
package user

import (
	"context"
	"crypto/ed25519"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/db"
)

// Database is the name of the context's database.
const Database = "cloudphone_user"

// ContextName is the bounded context's name in every function spec (its
// OpenFaaS bundle is cloudphone-<name>).
const ContextName = "user"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the users, refresh_tokens, quotas, quota_reservations
// and quota_grants tables. Open the database with outbox.Migrations,
// inbox.Migrations and these.
var Migrations = db.Embedded("user", migrationFiles, "migrations")

// Config is the user context's configuration, read once at start.
type Config struct {
	// TokenKey is the standard base64 of the Ed25519 seed that signs access tokens.
	TokenKey string `env:"CLOUDPHONE_USER_TOKEN_KEY" secret:"user-token-key"`
	// TokenPublicKey is the standard base64 of the matching public key; when
	// empty it is derived from TokenKey.
	TokenPublicKey  string        `env:"CLOUDPHONE_USER_TOKEN_PUBLIC_KEY" secret:"user-token-public-key"`
	AccessTokenTTL  time.Duration `env:"ACCESS_TOKEN_TTL" default:"15m"`
	RefreshTokenTTL time.Duration `env:"REFRESH_TOKEN_TTL" default:"168h"`
	// RefreshReuseGrace is how long after its use a refresh token may be
	// presented again as a retry (see Refresh); zero treats every second
	// use as theft.
	RefreshReuseGrace time.Duration `env:"REFRESH_REUSE_GRACE" default:"10s"`
	LoginMaxFailures  int           `env:"LOGIN_MAX_FAILURES" default:"5"`
	LoginLock         time.Duration `env:"LOGIN_LOCK" default:"15m"`
}

// Service implements the accounts context's use cases. It is safe for
// concurrent use.
type Service struct {
	pool     *pgxpool.Pool
	issuer   *auth.Issuer
	verifier *auth.Verifier
	revoked  auth.Revocations
	cfg      Config
	log      *slog.Logger

	// afterUserInsert, when set (tests), runs inside Register's transaction
	// right after the user row is written.
	afterUserInsert func(ctx context.Context, tx pgx.Tx) error
}

// Open returns a Service on pool (the cloudphone_user database, migrated with
// outbox.Migrations and Migrations) that signs tokens with cfg.TokenKey and
// records revocations in rdb. It fails when a dependency is missing, a key does
// not parse, the two keys do not match, or a duration or limit is not positive.
//
// revoked, when given, is where logouts are recorded and checked (a process
// shares one with its edge, so a logout is refused at once in-process);
// otherwise Redis is asked directly.
func Open(ctx context.Context, pool *pgxpool.Pool, rdb *redis.Client, cfg Config, log *slog.Logger, revoked ...auth.Revocations) (*Service, error) {
	switch {
	case pool == nil:
		return nil, errors.New("user: Open needs a Postgres pool")
	case rdb == nil:
		return nil, errors.New("user: Open needs a Redis client")
	case log == nil:
		return nil, errors.New("user: Open needs a logger")
	case cfg.TokenKey == "" && cfg.TokenPublicKey == "":
		return nil, errors.New("user: neither CLOUDPHONE_USER_TOKEN_KEY (secret user-token-key) nor CLOUDPHONE_USER_TOKEN_PUBLIC_KEY (secret user-token-public-key) is set")
	case cfg.RefreshReuseGrace < 0 || cfg.RefreshReuseGrace >= cfg.RefreshTokenTTL:
		return nil, fmt.Errorf("user: REFRESH_REUSE_GRACE must be at least 0 and shorter than REFRESH_TOKEN_TTL (%s, %s)", cfg.RefreshReuseGrace, cfg.RefreshTokenTTL)
	case cfg.AccessTokenTTL <= 0 || cfg.RefreshTokenTTL <= 0 || cfg.LoginLock <= 0 || cfg.LoginMaxFailures <= 0:
		return nil, fmt.Errorf("user: token lifetimes, login lock and max failures must be positive (%+v)",
			Config{AccessTokenTTL: cfg.AccessTokenTTL, RefreshTokenTTL: cfg.RefreshTokenTTL,
				LoginMaxFailures: cfg.LoginMaxFailures, LoginLock: cfg.LoginLock})
	}
	// Functions that only verify tokens (profile, logout) get the public key
	// alone; only the functions that sign get the private one.
	var issuer *auth.Issuer
	var pub ed25519.PublicKey
	if cfg.TokenKey != "" {
		priv, err := auth.ParsePrivateKey(cfg.TokenKey)
		if err != nil {
			return nil, fmt.Errorf("user: CLOUDPHONE_USER_TOKEN_KEY: %w", err)
		}
		issuer = auth.NewIssuer(priv, cfg.AccessTokenTTL)
		pub = priv.Public().(ed25519.PublicKey)
	}
	if cfg.TokenPublicKey != "" {
		given, err := auth.ParsePublicKey(cfg.TokenPublicKey)
		if err != nil {
			return nil, fmt.Errorf("user: CLOUDPHONE_USER_TOKEN_PUBLIC_KEY: %w", err)
		}
		if pub != nil && !given.Equal(pub) {
			return nil, errors.New("user: CLOUDPHONE_USER_TOKEN_PUBLIC_KEY does not match CLOUDPHONE_USER_TOKEN_KEY")
		}
		pub = given
	}
	rev := auth.NewRedisRevocations(rdb)
	if len(revoked) > 0 && revoked[0] != nil {
		rev = revoked[0]
	}
	return &Service{
		pool:     pool,
		issuer:   issuer,
		verifier: auth.NewVerifier(pub, rev),
		revoked:  rev,
		cfg:      cfg,
		log:      log,
	}, nil
}

// RefreshTokenTTL is how long a refresh token (and so a session cookie) lives.
func (s *Service) RefreshTokenTTL() time.Duration { return s.cfg.RefreshTokenTTL }

// Verifier returns the verifier of the access tokens s issues (for the
// functions that require a signed-in user).
func (s *Service) Verifier() *auth.Verifier { return s.verifier }
