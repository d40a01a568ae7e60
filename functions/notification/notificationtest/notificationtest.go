// Package notificationtest gives tests of the notification context a
// Service on a database of its own (real Postgres from $DATABASE_URL, real
// Redis from $REDIS_URL, the real SMTP server of $SMTP_URL whose messages
// are kept in $CLOUDPHONE_MAIL_DIR, as infra/cmd/devenv starts them).
package notificationtest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/maildrop"
)

// Clock is a controllable clock.
type Clock struct{ ns atomic.Int64 }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// Env is what a notification-context test needs.
type Env struct {
	Service *notification.Service
	Pool    *pgxpool.Pool
	Redis   *redis.Client
	Config  notification.Config
	Issuer  *auth.Issuer
	Clock   *Clock
	MailDir string
}

// MustEnv returns $name, failing the test when it is unset: a test that
// needs a server never skips.
func MustEnv(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run the tests under infra/cmd/devenv (make test), which starts Postgres, Redis and an SMTP server", name)
	}
	return v
}

// New returns an Env on a fresh database with a fresh signing key, a Redis
// prefix of its own, the SMTP server of $SMTP_URL and a clock that only
// moves when told (time.Now at the start). mutate changes the
// configuration before the Service opens.
func New(t testing.TB, mutate ...func(*notification.Config)) Env {
	t.Helper()
	pool := dbtest.Database(t, inbox.Migrations, notification.Migrations)
	rdb := dbtest.Redis(t)
	priv, pub, err := auth.GenerateKeyStrings()
	if err != nil {
		t.Fatal(err)
	}
	key, err := auth.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	clock := &Clock{}
	clock.ns.Store(time.Now().UnixNano())
	var b [4]byte
	_, _ = rand.Read(b[:])
	cfg := notification.Config{
		TokenPublicKey: pub, RedisPrefix: "t_" + hex.EncodeToString(b[:]) + ":",
		SMTPURL: MustEnv(t, "SMTP_URL"), SMTPFrom: "cloudphone <no-reply@cloudphone.test>",
		EmailMaxAttempts: 3, EmailBackoff: time.Minute, MailDir: MustEnv(t, "CLOUDPHONE_MAIL_DIR"),
		WebhookWindow: 24 * time.Hour, WebhookBackoff: time.Minute, WebhookMaxBackoff: time.Hour,
		WebhookTimeout: 5 * time.Second, MaxWebhooks: 3,
		StreamHeartbeat: time.Second, StreamsPerUser: 2, DeliveryPoll: time.Second,
		Now: clock.Now,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	svc, err := notification.Open(pool, rdb, cfg, logging.Discard())
	if err != nil {
		t.Fatalf("notification.Open: %v", err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	return Env{Service: svc, Pool: pool, Redis: rdb, Config: cfg, Issuer: auth.NewIssuer(ed25519.PrivateKey(key), time.Hour),
		Clock: clock, MailDir: cfg.MailDir}
}

// Token returns an access token of userID with the user role's
// notification permission, and the admin role when admin.
func (e Env) Token(t testing.TB, userID string, admin bool) string {
	t.Helper()
	p := auth.Principal{UserID: userID, Username: "u" + userID[:8],
		Permissions: []string{notification.PermRead}}
	if admin {
		p.Roles = append(p.Roles, auth.RoleAdmin)
	}
	tok, _, err := e.Issuer.Issue(p)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Event returns a new event of typ about subject carrying data.
func Event(t testing.TB, typ, subject string, data any) event.Event {
	t.Helper()
	e, err := events.New(context.Background(), typ, "/cloudphone/test/producer", subject, data)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Registered returns a user.registered event of a new user with address email.
func Registered(t testing.TB, userID, username, email string) event.Event {
	t.Helper()
	return Event(t, userevents.EventRegistered, userID, userevents.Registered{SchemaVersion: 1, UserID: userID, Username: username,
		Email: email, RegisteredAt: time.Now().UTC()})
}

// Running returns a device.running event of a device of userID.
func Running(t testing.TB, userID, deviceID string) event.Event {
	t.Helper()
	return Event(t, deviceevents.EventRunning, deviceID, deviceevents.Running{SchemaVersion: 1, DeviceID: deviceID, UserID: userID,
		CPUCores: 2, MemoryMB: 2048, At: time.Now().UTC()})
}

// OrderFailed returns a billing.order.failed event of userID.
func OrderFailed(t testing.TB, userID, reason string) event.Event {
	t.Helper()
	order := events.NewID()
	return Event(t, billingevents.EventOrderFailed, order, billingevents.OrderFailedData{SchemaVersion: 1, OrderID: order, UserID: userID,
		PlanID: "pro", Reason: reason})
}

// Record records e, failing the test on an error.
func (e Env) Record(t testing.TB, ev event.Event) notification.Outcome {
	t.Helper()
	out, err := e.Service.Record(context.Background(), ev)
	if err != nil {
		t.Fatalf("record %s: %v", ev.Type(), err)
	}
	return out
}

// Address returns a recipient address no other test uses.
func Address() string { return "u" + events.NewID()[:12] + "@example.test" }

// MailTo returns the messages the SMTP server caught for address.
func (e Env) MailTo(t testing.TB, address string) []maildrop.Message {
	t.Helper()
	all, err := maildrop.List(e.MailDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(all, func(m maildrop.Message) bool { return !slices.Contains(m.To, address) })
}
