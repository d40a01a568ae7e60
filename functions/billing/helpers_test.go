package billing_test

import (
	"context"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
	"github.com/cloudphone/cloudphone/functions/billing/billingtest"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/events"
)

// env is billingtest's Env, with the helpers below for the saga's steps.
type env struct{ billingtest.Env }

func setup(t testing.TB, mutate ...func(*billing.Config)) env {
	t.Helper()
	return env{billingtest.New(t, mutate...)}
}

func newUser() string { return events.NewID() }

// reply builds the user context's reply of type typ for grant (a fresh event id).
func reply(t testing.TB, typ, grant, user, reason string) event.Event {
	t.Helper()
	e, err := events.New(context.Background(), typ, "/cloudphone/user/user-quota-grants", grant,
		userevents.QuotaReply{GrantID: grant, UserID: user, Reason: reason})
	if err != nil {
		t.Fatal(err)
	}
	e.SetExtension(events.ExtCorrelation, grant)
	return e
}

func (e env) order(t testing.TB, user, plan string) billing.Order {
	t.Helper()
	o, created, err := e.Service.PlaceOrder(context.Background(), user, events.NewID(), billing.OrderRequest{PlanID: plan})
	if err != nil || !created {
		t.Fatalf("place order: %v (created %v)", err, created)
	}
	return o
}

// legacyOrder records an order of plan for user as an earlier version
// placed it: pending, its saga at step debit, and the debit command in the
// outbox, which it returns.
func (e env) legacyOrder(t testing.TB, user, plan string) (string, event.Event) {
	t.Helper()
	ctx := context.Background()
	id := events.NewID()
	p, err := e.Service.Plan(ctx, plan, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Pool.Exec(ctx, `
INSERT INTO orders (id, user_id, plan_id, price, currency, period_days, quota, status, idempotency_key, request_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, 'legacy')`, id, user, p.ID, p.Price, p.Currency, p.PeriodDays, p.Quota, "legacy-"+id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Pool.Exec(ctx, `INSERT INTO sagas (order_id, step, status, deadline, history) VALUES ($1, 'debit', 'running', $2, '[]')`,
		id, e.Clock.Now().Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	cmd, err := events.New(ctx, billingevents.EventDebitRequested, billing.SourceOrders, id, billingevents.DebitRequested{SchemaVersion: 1, OrderID: id})
	if err != nil {
		t.Fatal(err)
	}
	return id, cmd
}

func (e env) handleDebit(t testing.TB, ev event.Event) billing.Outcome {
	t.Helper()
	var cmd billingevents.DebitRequested
	if err := ev.DataAs(&cmd); err != nil {
		t.Fatal(err)
	}
	out, err := e.Service.HandleDebit(events.WithCause(context.Background(), ev), ev, cmd)
	if err != nil {
		t.Fatalf("debit %s: %v", cmd.OrderID, err)
	}
	return out
}

func (e env) handleReply(t testing.TB, ev event.Event) (billing.Outcome, error) {
	t.Helper()
	var r userevents.QuotaReply
	if err := ev.DataAs(&r); err != nil {
		t.Fatal(err)
	}
	return e.Service.HandleQuotaReply(events.WithCause(context.Background(), ev), ev, ev.Type(), r)
}

func (e env) get(t testing.TB, user, id string) billing.Order {
	t.Helper()
	o, err := e.Service.Order(context.Background(), user, id)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func (e env) ledger(t testing.TB, user string) []billing.Entry {
	t.Helper()
	page, err := e.Service.Transactions(context.Background(), user, billing.MaxPageSize, "")
	if err != nil {
		t.Fatal(err)
	}
	return page.Entries
}

// checkLedger proves the balance invariants of user: every balance_after ≥ 0,
// each entry starts where the previous one ended, and the entries sum to the
// balance.
func (e env) checkLedger(t testing.TB, user string) {
	t.Helper()
	rows, err := e.Pool.Query(context.Background(), `SELECT seq, amount, balance_before, balance_after FROM ledger WHERE user_id = $1 ORDER BY seq`, user)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var prev, sum, want int64
	for rows.Next() {
		var seq, amount, before, after int64
		if err := rows.Scan(&seq, &amount, &before, &after); err != nil {
			t.Fatal(err)
		}
		want++
		if seq != want || before != prev || after != before+amount || after < 0 {
			t.Errorf("ledger entry %d: %d → %d by %d after %d (seq want %d)", seq, before, after, amount, prev, want)
		}
		prev, sum = after, sum+amount
	}
	if b := e.Balance(t, user); b != sum {
		t.Errorf("balance %d, ledger sums to %d", b, sum)
	}
}

func fact(t testing.TB, typ, device, user string, at time.Time) event.Event {
	t.Helper()
	return billingtest.Fact(t, typ, device, user, at)
}

func (e env) record(t testing.TB, ev event.Event) {
	t.Helper()
	var f deviceevents.Fact
	if err := ev.DataAs(&f); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Service.RecordDeviceFact(context.Background(), ev, ev.Type(), f); err != nil {
		t.Fatal(err)
	}
}
