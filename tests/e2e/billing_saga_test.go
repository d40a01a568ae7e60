package e2e

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/user/userfunctions"
	"github.com/cloudphone/cloudphone/infra/local"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/eventauth"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function"
)

const (
	billingAdminPassword = "billing admin password e2e"
	billingWebhookSecret = "whsec_e2e_fake_provider" // the fake payment provider's secret
)

// billingPlatform is a running platform with billing, its admin token and
// billing's database.
type billingPlatform struct {
	*running
	base  string
	admin string
	db    *pgxpool.Pool
	// signer signs events for a platform running in another process.
	signer *eventauth.Signer
}

type billingOptions struct {
	without []string          // catalog functions not to host
	extra   map[string]string // more configuration
}

func startBilling(t testing.TB, o billingOptions) billingPlatform {
	t.Helper()
	e := newEnv(t)
	e.extra = map[string]string{"CLOUDPHONE_PAYMENT_WEBHOOK_SECRET": billingWebhookSecret}
	for k, v := range o.extra {
		e.extra[k] = v
	}
	entries := slices.DeleteFunc(catalog.Entries(), func(en function.Entry) bool { return slices.Contains(o.without, en.Spec.Name) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := local.Start(ctx, local.Options{
		Config: local.Config{Addr: "127.0.0.1:0", DataDir: e.dataDir, DatabaseURL: mustEnv(t, "DATABASE_URL"),
			RedisURL: mustEnv(t, "REDIS_URL"), TriggersDir: "../../triggers", AdminPassword: billingAdminPassword},
		Env:       config.FromMap(e.config()),
		Entries:   entries,
		Declared:  catalogSpecs(),
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Bootstrap: userfunctions.Bootstrap(io.Discard),
	})
	if err != nil {
		t.Fatalf("start platform: %v", err)
	}
	r := &running{Platform: p}
	t.Cleanup(func() {
		if !r.stopped {
			_ = p.Shutdown(context.Background())
		}
	})
	pool, err := p.Resources().Postgres(ctx, billing.Database)
	if err != nil {
		t.Fatal(err)
	}
	return billingPlatform{running: r, base: p.URL(), admin: billingLogin(t, p.URL(), "admin", billingAdminPassword), db: pool}
}

func billingLogin(t testing.TB, base, name, password string) string {
	t.Helper()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if status := call(t, "POST", base+"/api/v1/auth/login", map[string]string{"login": name, "password": password}, &tok); status != 200 {
		t.Fatalf("login %s: %d", name, status)
	}
	return tok.AccessToken
}

func billingBearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// buyer registers a user, credits amount and returns the user and its token.
func (p billingPlatform) buyer(t testing.TB, name string, amount int64) (registered, string) {
	t.Helper()
	u := register(t, p.base, name)
	if amount > 0 {
		if st := call(t, "POST", p.base+"/api/v1/admin/users/"+u.ID+"/credit",
			map[string]any{"amount": amount, "reason": "e2e"}, nil, billingBearer(p.admin)...); st != http.StatusCreated {
			t.Fatalf("credit %s: %d", name, st)
		}
	}
	return u, billingLogin(t, p.base, name, "correct horse battery")
}

func (p billingPlatform) order(t testing.TB, tok, plan, key string) (billing.Order, int) {
	t.Helper()
	var o billing.Order
	st := call(t, "POST", p.base+"/api/v1/orders", map[string]string{"plan_id": plan}, &o,
		append(billingBearer(tok), "Idempotency-Key", key)...)
	return o, st
}

func (p billingPlatform) getOrder(t testing.TB, tok, id string) billing.Order {
	t.Helper()
	var o billing.Order
	if st := call(t, "GET", p.base+"/api/v1/orders/"+id, nil, &o, billingBearer(tok)...); st != 200 {
		t.Fatalf("get order %s: %d", id, st)
	}
	return o
}

// settled waits for the order to be active or failed.
func (p billingPlatform) settled(t testing.TB, tok, id string, within time.Duration) billing.Order {
	t.Helper()
	var o billing.Order
	eventually(t, within, "order "+id+" settles", func() bool {
		o = p.getOrder(t, tok, id)
		return o.Status == billing.OrderActive || o.Status == billing.OrderFailed
	})
	return o
}

func (p billingPlatform) balance(t testing.TB, tok string) int64 {
	t.Helper()
	var b billing.Balance
	if st := call(t, "GET", p.base+"/api/v1/balance", nil, &b, billingBearer(tok)...); st != 200 {
		t.Fatalf("balance: %d", st)
	}
	return b.Balance
}

func (p billingPlatform) entries(t testing.TB, tok string) []billing.Entry {
	t.Helper()
	var page billing.EntriesPage
	if st := call(t, "GET", p.base+"/api/v1/balance/transactions?limit=100", nil, &page, billingBearer(tok)...); st != 200 {
		t.Fatalf("transactions: %d", st)
	}
	return page.Entries
}

type quotaMe struct {
	Limits billing.Quota `json:"limits"`
}

func (p billingPlatform) quota(t testing.TB, tok string) billing.Quota {
	t.Helper()
	var q quotaMe
	if st := call(t, "GET", p.base+"/api/v1/quotas/me", nil, &q, billingBearer(tok)...); st != 200 {
		t.Fatalf("quotas/me: %d", st)
	}
	return q.Limits
}

// checkLedger proves user's ledger a chain from 0 that never goes negative
// and sums to the balance, straight from billing's database.
func (p billingPlatform) checkLedger(t testing.TB, userID string) {
	t.Helper()
	rows, err := p.db.Query(context.Background(), `SELECT seq, amount, balance_before, balance_after FROM ledger WHERE user_id = $1 ORDER BY seq`, userID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var prev, sum, n int64
	for rows.Next() {
		var seq, amount, before, after int64
		if err := rows.Scan(&seq, &amount, &before, &after); err != nil {
			t.Fatal(err)
		}
		n++
		if seq != n || before != prev || after != before+amount || after < 0 {
			t.Errorf("ledger of %s broken at seq %d: %d → %d by %d, previous %d", userID, seq, before, after, amount, prev)
		}
		prev, sum = after, sum+amount
	}
	var bal int64
	_ = p.db.QueryRow(context.Background(), `SELECT coalesce((SELECT balance FROM balances WHERE user_id = $1), 0)`, userID).Scan(&bal)
	if bal != sum {
		t.Errorf("balance of %s is %d, its ledger sums to %d", userID, bal, sum)
	}
}

// postEvent posts a CloudEvent to the broker's ingress.
func (p billingPlatform) postEvent(t testing.TB, typ, subject string, data any) {
	t.Helper()
	e, err := events.New(context.Background(), typ, "/cloudphone/e2e/test", subject, data)
	if err != nil {
		t.Fatal(err)
	}
	var status int
	if p.running != nil {
		status = p.sendEvent(t, e)
	} else {
		// A platform in another process: sign with the key it keeps.
		req, err := cehttp.NewHTTPRequestFromEvent(context.Background(), p.base+"/broker/cloudphone", e)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.signer.Authorize(req, producerOf(t, typ), eventauth.BrokerAudience); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		status = resp.StatusCode
	}
	if status/100 != 2 {
		t.Fatalf("broker refused %s: %d", typ, status)
	}
}

// quotaPlus is the quota a grant b gives on top of a: totals add up, the
// per-device caps and the idle limit take the larger (the user context's rule).
func quotaPlus(a, b billing.Quota) billing.Quota {
	return billing.Quota{MaxDevices: a.MaxDevices + b.MaxDevices, MaxRunningDevices: a.MaxRunningDevices + b.MaxRunningDevices,
		MaxCPUCores: a.MaxCPUCores + b.MaxCPUCores, MaxMemoryMB: a.MaxMemoryMB + b.MaxMemoryMB, MaxStorageGB: a.MaxStorageGB + b.MaxStorageGB,
		DeviceMaxCPUCores: max(a.DeviceMaxCPUCores, b.DeviceMaxCPUCores), DeviceMaxMemoryMB: max(a.DeviceMaxMemoryMB, b.DeviceMaxMemoryMB),
		IdleMinutes: max(a.IdleMinutes, b.IdleMinutes)}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func readAll(resp *http.Response) []byte {
	b, _ := io.ReadAll(resp.Body)
	return b
}
