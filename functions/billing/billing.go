// Package billing is the billing context on the database
// cloudphone_billing: plans, balances with an append-only ledger, admin
// credits and signed payment top-ups, orders and the purchase saga that turns
// money into quota across the broker, subscriptions and their expiry, and
// usage metering of running devices. Its functions (plans, balance,
// paymentwebhook, orders, purchasesaga, metering, billingjobs) are thin
// wrappers around Service.
//
// Money only moves in this package's transactions: every change of a balance
// locks the balance row and appends a ledger entry with the balance before
// and after it, in the same transaction, so a balance is never negative and
// always equals the sum of its entries.
package billing

import (
	"context"
	"crypto/ed25519"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/metrics"
)

// Database is the name of the context's database.
const Database = "cloudphone_billing"

// SecretPaymentWebhook is the secret file of the payment provider's webhook
// signing key (Config.WebhookSecret).
const SecretPaymentWebhook = "payment-webhook-secret"

// ContextName is the bounded context's name in every function spec (its
// OpenFaaS bundle is cloudphone-<name>).
const ContextName = "billing"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the context's tables. Open the database with
// outbox.Migrations, inbox.Migrations and these.
var Migrations = db.Embedded("billing", migrationFiles, "migrations")

// Permissions the billing routes check besides authentication.
const (
	PermOrder       = "billing:order"
	PermRead        = "billing:read"
	PermAdminPlans  = "admin:plans"
	PermAdminCredit = "admin:credit"
	RoleAdmin       = "admin"
)

// Config is the billing context's configuration, read once at start.
type Config struct {
	// TokenPublicKey is the standard base64 Ed25519 public key of user access tokens.
	TokenPublicKey string `env:"CLOUDPHONE_USER_TOKEN_PUBLIC_KEY" secret:"user-token-public-key"`
	// WebhookSecret is the payment provider's signing secret; the webhook
	// refuses every request while it is empty.
	WebhookSecret string `env:"CLOUDPHONE_PAYMENT_WEBHOOK_SECRET" secret:"payment-webhook-secret"`
	// WebhookTolerance is how far a signature's timestamp may be from now.
	WebhookTolerance time.Duration `env:"PAYMENT_WEBHOOK_TOLERANCE" default:"5m"`
	// Currency is the currency of every balance and plan (ISO 4217).
	Currency string `env:"BILLING_CURRENCY" default:"USD"`
	// SagaDeadline is how long a purchase saga may run before the sweeper
	// compensates it.
	SagaDeadline time.Duration `env:"SAGA_DEADLINE" default:"5m"`
	// Usage rates, in minor units per hour: base + per core + per GB of memory.
	UsageBasePerHour int64 `env:"USAGE_BASE_PER_HOUR" default:"50"`
	UsageCorePerHour int64 `env:"USAGE_CORE_PER_HOUR" default:"10"`
	UsageGBPerHour   int64 `env:"USAGE_GB_PER_HOUR" default:"5"`
	// Job intervals of the scheduled billing function.
	ExpiryEvery  time.Duration `env:"SUBSCRIPTION_EXPIRY_EVERY" default:"5m"`
	ChargeEvery  time.Duration `env:"USAGE_CHARGE_EVERY" default:"10m"`
	RedriveEvery time.Duration `env:"BILLING_OUTBOX_REDRIVE_EVERY" default:"5m"`
	// LowBalanceEvery is how often at most balance.low is sent to one user.
	LowBalanceEvery time.Duration `env:"LOW_BALANCE_EVERY" default:"24h"`

	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
}

var currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)

// Service implements the billing context's use cases. It is safe for
// concurrent use.
type Service struct {
	pool     *pgxpool.Pool
	verifier *auth.Verifier
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	users    Users // nil: user ids are not checked (see CheckUsers)

	// after, when set (tests and fault injection), is called with a step
	// name right after that step's transaction committed.
	after func(step string)
	// metrics, when set (ReportTo), receives the saga's step times and outcomes.
	metrics *metrics.Metrics
}

// Open returns a Service on pool (the cloudphone_billing database migrated
// with outbox.Migrations, inbox.Migrations and Migrations), checking user
// tokens with cfg.TokenPublicKey and revocations in rdb, and seeds the basic,
// pro and team plans when they do not exist. It fails when a dependency is
// missing or a setting is not usable.
func Open(ctx context.Context, pool *pgxpool.Pool, rdb *redis.Client, cfg Config, log *slog.Logger) (*Service, error) {
	switch {
	case pool == nil:
		return nil, errors.New("billing: Open needs a Postgres pool")
	case rdb == nil:
		return nil, errors.New("billing: Open needs a Redis client")
	case log == nil:
		return nil, errors.New("billing: Open needs a logger")
	case cfg.TokenPublicKey == "":
		return nil, errors.New("billing: CLOUDPHONE_USER_TOKEN_PUBLIC_KEY (secret user-token-public-key) is not set")
	case !currencyPattern.MatchString(cfg.Currency):
		return nil, fmt.Errorf("billing: BILLING_CURRENCY %q is not a 3-letter currency code", cfg.Currency)
	case cfg.SagaDeadline <= 0 || cfg.WebhookTolerance <= 0 || cfg.ExpiryEvery <= 0 || cfg.ChargeEvery <= 0 ||
		cfg.RedriveEvery <= 0 || cfg.LowBalanceEvery <= 0:
		return nil, errors.New("billing: SAGA_DEADLINE, PAYMENT_WEBHOOK_TOLERANCE and the job intervals must be positive")
	case cfg.UsageBasePerHour < 0 || cfg.UsageCorePerHour < 0 || cfg.UsageGBPerHour < 0:
		return nil, errors.New("billing: usage rates must not be negative")
	}
	pub, err := auth.ParsePublicKey(cfg.TokenPublicKey)
	if err != nil {
		return nil, fmt.Errorf("billing: CLOUDPHONE_USER_TOKEN_PUBLIC_KEY: %w", err)
	}
	s := &Service{
		pool:     pool,
		verifier: auth.NewVerifier(ed25519.PublicKey(pub), auth.NewRedisRevocations(rdb)),
		cfg:      cfg,
		log:      log,
		now:      cfg.Now,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.seedPlans(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Verifier checks the user access tokens of the billing routes.
func (s *Service) Verifier() *auth.Verifier { return s.verifier }

// Config returns the configuration s runs with.
func (s *Service) Config() Config { return s.cfg }

// Pool returns the database pool (tests and jobs).
func (s *Service) Pool() *pgxpool.Pool { return s.pool }

// AfterStep sets a hook called with a step name right after that step's
// transaction committed; the platform uses it for fault injection, tests to
// observe. Call it before the Service is used.
func (s *Service) AfterStep(fn func(step string)) { s.after = fn }

// ReportTo has s report the purchase saga's step times and outcomes
// (cloudphone_saga_step_seconds, cloudphone_saga_outcomes_total) to m, and
// registers the gauges read from the database at each scrape: orders by
// state and failure code (cloudphone_orders) and the ledger's entries and
// amounts by kind (cloudphone_ledger_entries, cloudphone_ledger_amount_cents).
func (s *Service) ReportTo(m *metrics.Metrics) error {
	s.metrics = m
	return m.Gauges(s.log, s.readGauges,
		metrics.GaugeDesc{Name: "cloudphone_orders", Help: "Orders by state (pending, active, failed, cancelled) and failure code, as the database holds them.",
			Labels: []string{"state", "failure_code"}},
		metrics.GaugeDesc{Name: "cloudphone_ledger_entries", Help: "Ledger entries by kind (credit, debit, refund, topup, usage).",
			Labels: []string{"kind"}},
		metrics.GaugeDesc{Name: "cloudphone_ledger_amount_cents", Help: "Sum of the ledger's amounts by kind, in cents (debits and usage are negative).",
			Labels: []string{"kind"}})
}

const readGauges = `
SELECT 'order', status, coalesce(failure_code, ''), count(*)::float8 FROM orders GROUP BY 2, 3
UNION ALL
SELECT 'ledger', kind, '', count(*)::float8 FROM ledger GROUP BY 2
UNION ALL
SELECT 'amount', kind, '', sum(amount)::float8 FROM ledger GROUP BY 2`

func (s *Service) readGauges(ctx context.Context) ([][]metrics.Sample, error) {
	out := make([][]metrics.Sample, 3)
	seen := map[string]bool{}
	rows, err := s.pool.Query(ctx, readGauges)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var what, a, b string
		var v float64
		if err := rows.Scan(&what, &a, &b, &v); err != nil {
			return nil, err
		}
		switch what {
		case "order":
			out[0] = append(out[0], metrics.Sample{Labels: []string{a, b}, Value: v})
		case "ledger":
			out[1] = append(out[1], metrics.Sample{Labels: []string{a}, Value: v})
			seen[a] = true
		case "amount":
			out[2] = append(out[2], metrics.Sample{Labels: []string{a}, Value: v})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, kind := range []string{KindCredit, KindDebit, KindRefund, KindTopUp, KindUsage} {
		if !seen[kind] { // every kind is reported, 0 until its first entry
			out[1] = append(out[1], metrics.Sample{Labels: []string{kind}})
			out[2] = append(out[2], metrics.Sample{Labels: []string{kind}})
		}
	}
	for _, st := range []string{OrderPending, OrderPaid, OrderActive, OrderCancelled} {
		if !slices.ContainsFunc(out[0], func(x metrics.Sample) bool { return x.Labels[0] == st }) {
			out[0] = append(out[0], metrics.Sample{Labels: []string{st, ""}})
		}
	}
	return out, nil
}

func (s *Service) committed(step string) {
	if s.after != nil {
		s.after(step)
	}
}

// Steps passed to the AfterStep hook.
const (
	StepOrderCreated   = "order.created"
	StepDebited        = "saga.debited"
	StepGrantReceived  = "saga.granted.received"
	StepActivated      = "saga.activated"
	StepCompensated    = "saga.compensated"
	StepSweptOne       = "saga.swept"
	StepUsageCharged   = "usage.charged"
	StepSubscriptionEx = "subscription.expired"
)
