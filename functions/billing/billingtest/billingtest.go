// Package billingtest gives tests of the billing context's functions a
// Service on a database of their own (real Postgres from $DATABASE_URL, real
// Redis from $REDIS_URL), a clock they move, and access tokens the service
// accepts.
package billingtest

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/outbox"
)

// WebhookSecret is the payment webhook secret of every Env.
const WebhookSecret = "whsec_test"

// Clock is a clock a test sets and moves.
type Clock struct{ ns atomic.Int64 }

// Now is the clock's time.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Set sets the clock to t.
func (c *Clock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// Env is what a test of a billing function needs.
type Env struct {
	Service *billing.Service
	Pool    *pgxpool.Pool
	Redis   *redis.Client
	Clock   *Clock
	issuer  *auth.Issuer
}

// New returns an Env on a fresh database migrated with the outbox, inbox and
// billing migrations (the basic, pro and team plans seeded), its clock at
// 2030-01-01 12:00 UTC; mutate changes the configuration first.
func New(t testing.TB, mutate ...func(*billing.Config)) Env {
	t.Helper()
	pool := dbtest.Database(t, outbox.Migrations, inbox.Migrations, billing.Migrations)
	rdb := dbtest.Redis(t)
	priv, pub, err := auth.GenerateKeyStrings()
	if err != nil {
		t.Fatal(err)
	}
	key, err := auth.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	c := &Clock{}
	c.Set(time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC))
	cfg := billing.Config{
		TokenPublicKey: pub, WebhookSecret: WebhookSecret, WebhookTolerance: 5 * time.Minute, Currency: "USD",
		SagaDeadline: 5 * time.Minute, UsageBasePerHour: 50, UsageCorePerHour: 10, UsageGBPerHour: 5,
		ExpiryEvery: 5 * time.Minute, ChargeEvery: 10 * time.Minute, RedriveEvery: 5 * time.Minute,
		LowBalanceEvery: 24 * time.Hour, Now: c.Now,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	svc, err := billing.Open(context.Background(), pool, rdb, cfg, logging.Discard())
	if err != nil {
		t.Fatalf("billing.Open: %v", err)
	}
	return Env{Service: svc, Pool: pool, Redis: rdb, Clock: c, issuer: auth.NewIssuer(key, time.Hour)}
}

// Token returns an access token of userID with roles and permissions that
// the Service's verifier accepts.
func (e Env) Token(t testing.TB, userID string, roles []string, permissions ...string) string {
	t.Helper()
	tok, _, err := e.issuer.Issue(auth.Principal{UserID: userID, Roles: roles, Permissions: permissions})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// UserToken is the token of an ordinary user of userID: billing:read and
// billing:order.
func (e Env) UserToken(t testing.TB, userID string) string {
	t.Helper()
	return e.Token(t, userID, []string{"user"}, billing.PermRead, billing.PermOrder)
}

// AdminToken is the token of an administrator with every billing
// permission.
func (e Env) AdminToken(t testing.TB, userID string) string {
	t.Helper()
	return e.Token(t, userID, []string{"user", auth.RoleAdmin},
		billing.PermRead, billing.PermOrder, billing.PermAdminPlans, billing.PermAdminCredit)
}

// Credit adds amount to userID's balance.
func (e Env) Credit(t testing.TB, userID string, amount int64) {
	t.Helper()
	if _, err := e.Service.Credit(context.Background(), events.NewID(), userID, billing.CreditRequest{Amount: amount, Reason: "test"}); err != nil {
		t.Fatalf("credit %s: %v", userID, err)
	}
}

// Balance is userID's balance.
func (e Env) Balance(t testing.TB, userID string) int64 {
	t.Helper()
	b, err := e.Service.Balance(context.Background(), userID)
	if err != nil {
		t.Fatal(err)
	}
	return b.Balance
}

// Outboxed returns the events of type typ about subject in the outbox, in
// the order they were added.
func (e Env) Outboxed(t testing.TB, typ, subject string) []event.Event {
	t.Helper()
	rows, err := e.Pool.Query(context.Background(), `SELECT payload FROM outbox WHERE type = $1 AND subject = $2 ORDER BY id`, typ, subject)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []event.Event
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			t.Fatal(err)
		}
		var ev event.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Decode decodes w's body into v, failing t unless w has status.
func Decode(t testing.TB, w *httptest.ResponseRecorder, status int, v any) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d: %s", w.Code, status, w.Body)
	}
	if v != nil {
		if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
			t.Fatalf("body %s: %v", w.Body, err)
		}
	}
}

// Fact is the device fact typ about a 2-core, 2 GiB device of userID at at.
func Fact(t testing.TB, typ, deviceID, userID string, at time.Time) event.Event {
	t.Helper()
	ev, err := events.New(context.Background(), typ, "/cloudphone/device/test", deviceID,
		deviceevents.Fact{SchemaVersion: 1, DeviceID: deviceID, UserID: userID, CPUCores: 2, MemoryMB: 2048, At: at})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}
