// Package app is the apps context on the database cloudphone_app: users
// upload APKs, which are stored once per content in an S3-compatible bucket
// (keyed by their SHA-256) and described by their parsed manifest; users list
// and delete their own apps; the device context asks for an app's download
// (a presigned URL, its digest and size) to install it on a phone. Its
// functions (apps, appsinternal) are thin wrappers around Service.
package app

import (
	"context"
	"crypto/ed25519"
	"embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/objectstore"
)

// ContextName is the bounded context's name in every function spec.
const ContextName = "app"

// Database is the name of the context's database.
const Database = "cloudphone_app"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the objects and apps tables. Open the database with
// outbox.Migrations, inbox.Migrations and these.
var Migrations = db.Embedded("app", migrationFiles, "migrations")

// Permissions the app routes check besides authentication.
const (
	PermUpload = "app:upload"
	PermRead   = "app:read"
	PermDelete = "app:delete"
)

// Secrets of the S3-compatible store that keeps APKs (its bucket and region
// are S3_BUCKET and S3_REGION, defaults cloudphone and us-east-1).
const (
	SecretS3Endpoint        = "s3-endpoint"
	SecretS3AccessKeyID     = "s3-access-key-id"
	SecretS3SecretAccessKey = "s3-secret-access-key"
)

// Config is the app context's configuration, read once at start.
type Config struct {
	// TokenPublicKey is the standard base64 Ed25519 public key of user access
	// tokens.
	TokenPublicKey string `env:"CLOUDPHONE_USER_TOKEN_PUBLIC_KEY" secret:"user-token-public-key"`
	// MaxAPKBytes is the largest APK an upload may carry.
	MaxAPKBytes int64 `env:"APP_MAX_APK_BYTES" default:"209715200"`
	// DownloadTTL is how long a presigned download URL handed to the device
	// context stays valid.
	DownloadTTL time.Duration `env:"APP_DOWNLOAD_URL_TTL" default:"15m"`
	// Store is where APKs are kept.
	Store objectstore.Config
}

// Store is the object storage the app context needs; *objectstore.Store is
// the real one.
type Store interface {
	Put(ctx context.Context, key string, r io.Reader, limit int64) (int64, error)
	PutSized(ctx context.Context, key string, r io.Reader, size, limit int64) (int64, error)
	Head(ctx context.Context, key string) (int64, error)
	Delete(ctx context.Context, key string) error
	ReaderAt(ctx context.Context, key string, size int64) *objectstore.ReaderAt
	PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// Service implements the app context's use cases. It is safe for concurrent
// use.
type Service struct {
	pool     *pgxpool.Pool
	store    Store
	verifier *auth.Verifier
	cfg      Config
	limits   Limits
	log      *slog.Logger
}

// Open returns a Service on pool (the cloudphone_app database migrated with
// outbox.Migrations, inbox.Migrations and Migrations) keeping APKs in store,
// checking user tokens with cfg.TokenPublicKey and revocations in rdb. It
// fails when a dependency is missing or a setting is not usable.
func Open(pool *pgxpool.Pool, store Store, rdb *redis.Client, cfg Config, log *slog.Logger) (*Service, error) {
	switch {
	case pool == nil:
		return nil, errors.New("app: Open needs a Postgres pool")
	case store == nil:
		return nil, errors.New("app: Open needs an object store")
	case rdb == nil:
		return nil, errors.New("app: Open needs a Redis client")
	case log == nil:
		return nil, errors.New("app: Open needs a logger")
	case cfg.TokenPublicKey == "":
		return nil, errors.New("app: CLOUDPHONE_USER_TOKEN_PUBLIC_KEY (secret user-token-public-key) is not set")
	case cfg.MaxAPKBytes <= 0:
		return nil, errors.New("app: APP_MAX_APK_BYTES must be positive")
	case cfg.DownloadTTL <= 0 || cfg.DownloadTTL > 7*24*time.Hour:
		return nil, errors.New("app: APP_DOWNLOAD_URL_TTL must be positive and at most 7 days (S3's limit)")
	}
	pub, err := auth.ParsePublicKey(cfg.TokenPublicKey)
	if err != nil {
		return nil, fmt.Errorf("app: CLOUDPHONE_USER_TOKEN_PUBLIC_KEY: %w", err)
	}
	return &Service{
		pool:     pool,
		store:    store,
		verifier: auth.NewVerifier(ed25519.PublicKey(pub), auth.NewRedisRevocations(rdb)),
		cfg:      cfg,
		limits:   DefaultLimits,
		log:      log,
	}, nil
}

// Verifier checks the user access tokens of the app routes.
func (s *Service) Verifier() *auth.Verifier { return s.verifier }

// Pool returns the database pool (tests).
func (s *Service) Pool() *pgxpool.Pool { return s.pool }

// SetLimits replaces the archive limits of uploads (tests).
func (s *Service) SetLimits(l Limits) { s.limits = l }
