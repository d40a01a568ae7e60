// Package notification is the notification context on the database
// cloudphone_notification: it turns the other contexts' facts into
// notifications of their users, in an in-app inbox with a live stream
// (Server-Sent Events fed through Redis pub/sub), by email over SMTP and by
// signed outgoing webhooks, each channel switched on or off per user and
// notification type. Its functions (events, inbox, preferences, stream,
// webhooks, delivery, adminmail) are thin wrappers around Service.
//
// The in-app path never waits for the others: recording an event inserts the
// inbox row, the queued email and the queued webhook deliveries in one
// transaction with the event's inbox claim, so a redelivered event makes
// nothing twice; Drain sends what is queued, with retries and backoff.
package notification

import (
	"crypto/ed25519"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/db"
)

// ContextName is the bounded context's name in every function spec.
const ContextName = "notification"

// Database is the name of the context's database.
const Database = "cloudphone_notification"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the context's tables. Open the database with
// inbox.Migrations and these.
var Migrations = db.Embedded("notification", migrationFiles, "migrations")

// PermRead is the permission the user's notification routes check besides
// authentication.
const PermRead = "notification:read"

// Config is the notification context's configuration, read once at start.
type Config struct {
	// TokenPublicKey is the standard base64 Ed25519 public key of user access tokens.
	TokenPublicKey string `env:"CLOUDPHONE_USER_TOKEN_PUBLIC_KEY" secret:"user-token-public-key"`
	// RedisPrefix goes before the context's Redis keys and channels.
	RedisPrefix string `env:"CLOUDPHONE_REDIS_PREFIX"`

	// SMTPURL is the mail server: smtp://[user:password@]host[:port] (plain,
	// upgraded with STARTTLS when the server offers it) or smtps://… (TLS
	// from the start). Empty: no email is sent (queued emails wait).
	SMTPURL string `env:"SMTP_URL" secret:"smtp-url"`
	// SMTPFrom is the sender of every email.
	SMTPFrom string `env:"SMTP_FROM" default:"cloudphone <no-reply@cloudphone.local>"`
	// EmailMaxAttempts is how often an email is tried before it is dead.
	EmailMaxAttempts int `env:"EMAIL_MAX_ATTEMPTS" default:"6"`
	// EmailBackoff is the wait after the first failed attempt; it doubles.
	EmailBackoff time.Duration `env:"EMAIL_RETRY_BACKOFF" default:"30s"`
	// MailDir is the local SMTP catcher's mail folder, which
	// GET /api/v1/admin/mail lists; empty when a real server is used.
	MailDir string `env:"CLOUDPHONE_MAIL_DIR"`

	// WebhookWindow is how long a delivery is retried.
	WebhookWindow time.Duration `env:"WEBHOOK_RETRY_WINDOW" default:"24h"`
	// WebhookBackoff is the wait after the first failed attempt; it doubles
	// up to WebhookMaxBackoff.
	WebhookBackoff    time.Duration `env:"WEBHOOK_RETRY_BACKOFF" default:"30s"`
	WebhookMaxBackoff time.Duration `env:"WEBHOOK_MAX_BACKOFF" default:"1h"`
	// WebhookTimeout bounds one delivery attempt.
	WebhookTimeout time.Duration `env:"WEBHOOK_TIMEOUT" default:"10s"`
	// WebhookAllowLoopback lets webhooks target loopback addresses. For
	// tests only: every other private, link-local and metadata address stays
	// refused.
	WebhookAllowLoopback bool `env:"WEBHOOK_ALLOW_LOOPBACK"`
	// MaxWebhooks is how many endpoints one user may register.
	MaxWebhooks int `env:"WEBHOOK_MAX_PER_USER" default:"10"`

	// StreamHeartbeat is how often an idle stream gets a comment line (and
	// checks the database for anything pub/sub missed).
	StreamHeartbeat time.Duration `env:"NOTIFICATION_STREAM_HEARTBEAT" default:"15s"`
	// StreamsPerUser is how many streams one user may hold open at once,
	// across every instance.
	StreamsPerUser int `env:"NOTIFICATION_STREAMS_PER_USER" default:"5"`

	// DeliveryPoll is how often the delivery worker looks for due email and
	// webhook deliveries when no wake-up came.
	DeliveryPoll time.Duration `env:"NOTIFICATION_DELIVERY_POLL" default:"5s"`

	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
}

// Service implements the notification context's use cases. Safe for
// concurrent use.
type Service struct {
	pool     *pgxpool.Pool
	rdb      *redis.Client
	verifier *auth.Verifier
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	from     *mail.Address
	mailer   *Mailer // nil without SMTPURL
	hooks    *webhookClient

	slots sync.Map // stream slot member → user id, the slots this process holds
	hubMu sync.Mutex
	hub   *hub // made on the first stream
}

// Open returns a Service on pool (the cloudphone_notification database
// migrated with inbox.Migrations and Migrations), checking user tokens with
// cfg.TokenPublicKey and revocations in rdb, and publishing live
// notifications on rdb. It fails when a dependency is missing or a setting is
// not usable.
func Open(pool *pgxpool.Pool, rdb *redis.Client, cfg Config, log *slog.Logger) (*Service, error) {
	switch {
	case pool == nil:
		return nil, errors.New("notification: Open needs a Postgres pool")
	case rdb == nil:
		return nil, errors.New("notification: Open needs a Redis client")
	case log == nil:
		return nil, errors.New("notification: Open needs a logger")
	case cfg.TokenPublicKey == "":
		return nil, errors.New("notification: CLOUDPHONE_USER_TOKEN_PUBLIC_KEY (secret user-token-public-key) is not set")
	case cfg.EmailMaxAttempts < 1 || cfg.EmailBackoff <= 0:
		return nil, errors.New("notification: EMAIL_MAX_ATTEMPTS and EMAIL_RETRY_BACKOFF must be positive")
	case cfg.WebhookWindow <= 0 || cfg.WebhookBackoff <= 0 || cfg.WebhookMaxBackoff < cfg.WebhookBackoff || cfg.WebhookTimeout <= 0:
		return nil, errors.New("notification: WEBHOOK_RETRY_WINDOW, WEBHOOK_RETRY_BACKOFF, WEBHOOK_MAX_BACKOFF (≥ the backoff) and WEBHOOK_TIMEOUT must be positive")
	case cfg.MaxWebhooks < 1 || cfg.StreamsPerUser < 1 || cfg.StreamHeartbeat <= 0 || cfg.DeliveryPoll <= 0:
		return nil, errors.New("notification: WEBHOOK_MAX_PER_USER, NOTIFICATION_STREAMS_PER_USER, NOTIFICATION_STREAM_HEARTBEAT and NOTIFICATION_DELIVERY_POLL must be positive")
	}
	pub, err := auth.ParsePublicKey(cfg.TokenPublicKey)
	if err != nil {
		return nil, fmt.Errorf("notification: CLOUDPHONE_USER_TOKEN_PUBLIC_KEY: %w", err)
	}
	from, err := mail.ParseAddress(cfg.SMTPFrom)
	if err != nil {
		return nil, fmt.Errorf("notification: SMTP_FROM %q: %w", cfg.SMTPFrom, err)
	}
	s := &Service{
		pool:     pool,
		rdb:      rdb,
		verifier: auth.NewVerifier(ed25519.PublicKey(pub), auth.NewRedisRevocations(rdb)),
		cfg:      cfg,
		log:      log,
		now:      cfg.Now,
		from:     from,
		hooks:    newWebhookClient(cfg.WebhookTimeout, cfg.WebhookAllowLoopback),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if cfg.SMTPURL != "" {
		if s.mailer, err = NewMailer(cfg.SMTPURL); err != nil {
			return nil, fmt.Errorf("notification: SMTP_URL: %w", err)
		}
	}
	return s, nil
}

// Verifier checks the user access tokens of the notification routes.
func (s *Service) Verifier() *auth.Verifier { return s.verifier }

// Config returns the configuration s runs with.
func (s *Service) Config() Config { return s.cfg }

// Pool returns the database pool (tests).
func (s *Service) Pool() *pgxpool.Pool { return s.pool }

// nowDB is the clock's time as Postgres keeps it (UTC, microseconds), so a
// time computed here compares with one read back as it would have before.
func (s *Service) nowDB() time.Time { return s.now().UTC().Truncate(time.Microsecond) }
