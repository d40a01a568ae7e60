package billing_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/outbox"
)

// clock is a controllable clock.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

type env struct {
	svc   *billing.Service
	pool  *pgxpool.Pool
	clock *clock
}

func setup(t testing.TB, mutate ...func(*billing.Config)) env {
	t.Helper()
	pool := dbtest.Database(t, outbox.Migrations, inbox.Migrations, billing.Migrations)
	url := os.Getenv("REDIS_URL")
	if url == "" {
		t.Fatal("REDIS_URL is not set: this test needs a Redis server, e.g. REDIS_URL=redis://127.0.0.1:6379/0")
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	_, pub, err := auth.GenerateKeyStrings()
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{}
	c.Set(time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC))
	cfg := billing.Config{
		TokenPublicKey: pub, WebhookSecret: "whsec_test", WebhookTolerance: 5 * time.Minute, Currency: "USD",
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
	return env{svc: svc, pool: pool, clock: c}
}

func newUser() string { return events.NewID() }

func (e env) credit(t testing.TB, user string, amount int64) {
	t.Helper()
	if _, err := e.svc.Credit(context.Background(), newUser(), user, billing.CreditRequest{Amount: amount, Reason: "test"}); err != nil {
		t.Fatalf("credit: %v", err)
	}
}

func (e env) balance(t testing.TB, user string) int64 {
	t.Helper()
	b, err := e.svc.Balance(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return b.Balance
}

// outboxed returns the events of type typ in the outbox whose subject is subject.
func (e env) outboxed(t testing.TB, typ, subject string) []event.Event {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT payload FROM outbox WHERE type = $1 AND subject = $2 ORDER BY id`, typ, subject)
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
	return out
}

// reply builds the user context's reply of type typ for grant (a fresh event id).
func reply(t testing.TB, typ, grant, user, reason string) event.Event {
	t.Helper()
	e, err := events.New(context.Background(), typ, "/cloudphone/user/user-quota-grants", grant,
		billing.QuotaReply{GrantID: grant, UserID: user, Reason: reason})
	if err != nil {
		t.Fatal(err)
	}
	e.SetExtension(events.ExtCorrelation, grant)
	return e
}

func (e env) order(t testing.TB, user, plan string) billing.Order {
	t.Helper()
	o, created, err := e.svc.PlaceOrder(context.Background(), user, events.NewID(), billing.OrderRequest{PlanID: plan})
	if err != nil || !created {
		t.Fatalf("place order: %v (created %v)", err, created)
	}
	return o
}

func (e env) debit(t testing.TB, orderID string) billing.Outcome {
	t.Helper()
	cmds := e.outboxed(t, billing.EventDebitRequested, orderID)
	if len(cmds) != 1 {
		t.Fatalf("%d debit commands for %s, want 1", len(cmds), orderID)
	}
	return e.handleDebit(t, cmds[0])
}

func (e env) handleDebit(t testing.TB, ev event.Event) billing.Outcome {
	t.Helper()
	var cmd billing.DebitRequested
	if err := ev.DataAs(&cmd); err != nil {
		t.Fatal(err)
	}
	out, err := e.svc.HandleDebit(events.WithCause(context.Background(), ev), ev, cmd)
	if err != nil {
		t.Fatalf("debit %s: %v", cmd.OrderID, err)
	}
	return out
}

func (e env) handleReply(t testing.TB, ev event.Event) (billing.Outcome, error) {
	t.Helper()
	var r billing.QuotaReply
	if err := ev.DataAs(&r); err != nil {
		t.Fatal(err)
	}
	return e.svc.HandleQuotaReply(events.WithCause(context.Background(), ev), ev, ev.Type(), r)
}

func (e env) get(t testing.TB, user, id string) billing.Order {
	t.Helper()
	o, err := e.svc.Order(context.Background(), user, id)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func (e env) ledger(t testing.TB, user string) []billing.Entry {
	t.Helper()
	page, err := e.svc.Transactions(context.Background(), user, billing.MaxPageSize, "")
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
	rows, err := e.pool.Query(context.Background(), `SELECT seq, amount, balance_before, balance_after FROM ledger WHERE user_id = $1 ORDER BY seq`, user)
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
	if b := e.balance(t, user); b != sum {
		t.Errorf("balance %d, ledger sums to %d", b, sum)
	}
}

func TestPurchaseSagaHappyPathDebitsOnceGrantsAndActivates(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.credit(t, u, 5000)
	o := e.order(t, u, "basic")
	if o.Status != billing.OrderPending || o.Price != 990 {
		t.Fatalf("new order %+v", o)
	}
	if out := e.debit(t, o.ID); out != billing.OutcomeApplied {
		t.Fatalf("debit outcome %s", out)
	}
	if got := e.get(t, u, o.ID); got.Status != billing.OrderPaid || got.Saga.Step != billing.StepGrant {
		t.Fatalf("after debit: %s at %s", got.Status, got.Saga.Step)
	}
	grants := e.outboxed(t, billing.EventQuotaGrantRequested, o.ID)
	if len(grants) != 1 {
		t.Fatalf("%d grant commands", len(grants))
	}
	var g billing.QuotaGrantRequested
	if err := grants[0].DataAs(&g); err != nil || g.GrantID != o.ID || g.UserID != u || g.MaxDevices != 2 {
		t.Fatalf("grant command %+v, %v", g, err)
	}
	if c, _ := grants[0].Extensions()[events.ExtCorrelation].(string); c != o.ID {
		t.Fatalf("grant command correlationid %q, want the order id", c)
	}
	if out, err := e.handleReply(t, reply(t, billing.EventQuotaGranted, o.ID, u, "")); err != nil || out != billing.OutcomeApplied {
		t.Fatalf("granted: %s, %v", out, err)
	}
	got := e.get(t, u, o.ID)
	if got.Status != billing.OrderActive || got.Saga.Status != billing.SagaCompleted || got.SubscriptionID == nil {
		t.Fatalf("after grant: %+v", got)
	}
	if b := e.balance(t, u); b != 5000-990 {
		t.Fatalf("balance %d", b)
	}
	subs, _ := e.svc.Subscriptions(context.Background(), u)
	if len(subs) != 1 || !subs[0].ExpiresAt.Equal(e.clock.Now().Add(30*24*time.Hour)) || subs[0].GrantID != o.ID {
		t.Fatalf("subscriptions %+v", subs)
	}
	if len(e.outboxed(t, billing.EventOrderActivated, o.ID)) != 1 {
		t.Fatal("no order.activated fact")
	}
	e.checkLedger(t, u)
}

func TestInsufficientFundsFailsTheOrderAndMovesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.credit(t, u, 500)
	o := e.order(t, u, "basic")
	e.debit(t, o.ID)
	got := e.get(t, u, o.ID)
	if got.Status != billing.OrderFailed || got.FailureCode != billing.FailInsufficientFunds {
		t.Fatalf("order %+v", got)
	}
	if b := e.balance(t, u); b != 500 || len(e.ledger(t, u)) != 1 {
		t.Fatalf("balance %d, %d entries", b, len(e.ledger(t, u)))
	}
	if len(e.outboxed(t, billing.EventQuotaGrantRequested, o.ID)) != 0 || len(e.outboxed(t, billing.EventOrderFailed, o.ID)) != 1 {
		t.Fatal("want no grant command and one order.failed")
	}
}

func TestRefusedGrantRefundsAndFails(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.credit(t, u, 990)
	o := e.order(t, u, "basic")
	e.debit(t, o.ID)
	if _, err := e.handleReply(t, reply(t, billing.EventQuotaGrantRefused, o.ID, u, "unknown_user")); err != nil {
		t.Fatal(err)
	}
	got := e.get(t, u, o.ID)
	if got.Status != billing.OrderFailed || got.FailureCode != billing.FailGrantRefused {
		t.Fatalf("order %+v", got)
	}
	l := e.ledger(t, u)
	if e.balance(t, u) != 990 || len(l) != 3 || l[0].Kind != billing.KindRefund || l[1].Kind != billing.KindDebit {
		t.Fatalf("balance %d, ledger %+v", e.balance(t, u), l)
	}
	if len(e.outboxed(t, billing.EventQuotaRevokeRequested, o.ID)) != 0 {
		t.Fatal("a refused grant needs no revoke")
	}
	e.checkLedger(t, u)
}

func TestSweeperCompensatesASagaWhoseGrantNeverAnswers(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.credit(t, u, 990)
	o := e.order(t, u, "basic")
	e.debit(t, o.ID)
	if n, _ := e.svc.SweepSagas(context.Background()); n != 0 {
		t.Fatalf("swept %d sagas before their deadline", n)
	}
	e.clock.Advance(5*time.Minute + time.Second)
	rep, err := e.svc.RunScheduled(context.Background(), billing.EventSweepRequested, time.Time{}, nil)
	if err != nil || rep.Swept != 1 {
		t.Fatalf("sweep: %+v, %v", rep, err)
	}
	got := e.get(t, u, o.ID)
	if got.Status != billing.OrderFailed || got.FailureCode != billing.FailTimeout {
		t.Fatalf("order %+v", got)
	}
	if e.balance(t, u) != 990 || len(e.outboxed(t, billing.EventQuotaRevokeRequested, o.ID)) != 1 {
		t.Fatal("want the price refunded and the grant revoked")
	}
	// The grant answers late: acknowledged, nothing changes.
	if out, err := e.handleReply(t, reply(t, billing.EventQuotaGranted, o.ID, u, "")); err != nil || out != billing.OutcomeIgnored {
		t.Fatalf("late granted: %s, %v", out, err)
	}
	if out, _ := e.handleReply(t, reply(t, billing.EventQuotaRevoked, o.ID, u, "")); out != billing.OutcomeApplied {
		t.Fatalf("revoked confirmation: %s", out)
	}
	if e.get(t, u, o.ID).Status != billing.OrderFailed || e.balance(t, u) != 990 {
		t.Fatal("a late reply changed the outcome")
	}
	e.checkLedger(t, u)
}

func TestSagaEventsDeliveredTwiceAndOutOfOrderEndTheSame(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.credit(t, u, 990)
	o := e.order(t, u, "basic")
	granted := reply(t, billing.EventQuotaGranted, o.ID, u, "")
	// The reply before its step: not yet, and the inbox does not keep it.
	if _, err := e.handleReply(t, granted); apierr.CodeOf(err) != apierr.Conflict {
		t.Fatalf("early reply: %v, want not-yet (conflict)", err)
	}
	debit := e.outboxed(t, billing.EventDebitRequested, o.ID)[0]
	if out := e.handleDebit(t, debit); out != billing.OutcomeApplied {
		t.Fatal(out)
	}
	if out := e.handleDebit(t, debit); out != billing.OutcomeDuplicate {
		t.Fatalf("same debit again: %s", out)
	}
	debit2 := debit.Clone()
	debit2.SetID(events.NewID()) // a re-sent command under a new id
	if out := e.handleDebit(t, debit2); out != billing.OutcomeIgnored {
		t.Fatalf("re-sent debit: %s", out)
	}
	for range 2 {
		if _, err := e.handleReply(t, granted); err != nil {
			t.Fatal(err)
		}
	}
	if out, _ := e.handleReply(t, reply(t, billing.EventQuotaGrantRefused, o.ID, u, "revoked")); out != billing.OutcomeIgnored {
		t.Fatalf("refusal after activation: %s", out)
	}
	got := e.get(t, u, o.ID)
	if got.Status != billing.OrderActive || e.balance(t, u) != 0 || len(e.ledger(t, u)) != 2 {
		t.Fatalf("order %s, balance %d, %d entries", got.Status, e.balance(t, u), len(e.ledger(t, u)))
	}
	e.checkLedger(t, u)
}

func TestIdempotencyKeyReplaysTheOrderAndRefusesAnotherBody(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	ctx := context.Background()
	a, created, err := e.svc.PlaceOrder(ctx, u, "key-1", billing.OrderRequest{PlanID: "basic"})
	if err != nil || !created {
		t.Fatal(err)
	}
	b, created, err := e.svc.PlaceOrder(ctx, u, "key-1", billing.OrderRequest{PlanID: "basic"})
	if err != nil || created || b.ID != a.ID {
		t.Fatalf("replay: %v, created %v, %s vs %s", err, created, b.ID, a.ID)
	}
	if _, _, err := e.svc.PlaceOrder(ctx, u, "key-1", billing.OrderRequest{PlanID: "pro"}); apierr.CodeOf(err) != apierr.Unprocessable {
		t.Fatalf("other body: %v", err)
	}
	if _, _, err := e.svc.PlaceOrder(ctx, newUser(), "key-1", billing.OrderRequest{PlanID: "pro"}); err != nil {
		t.Fatalf("another user's key: %v", err)
	}
	if _, _, err := e.svc.PlaceOrder(ctx, u, "", billing.OrderRequest{PlanID: "basic"}); apierr.CodeOf(err) != apierr.Invalid {
		t.Fatalf("no key: %v", err)
	}
	if _, err := e.svc.Order(ctx, newUser(), a.ID); apierr.CodeOf(err) != apierr.NotFound {
		t.Fatalf("another user's order: %v", err)
	}
}

func TestConcurrentDebitsNeverOverdrawTheBalance(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.credit(t, u, 10*990)
	var ids []string
	for range 50 {
		ids = append(ids, e.order(t, u, "basic").ID)
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() { e.debit(t, id) })
	}
	wg.Wait()
	paid, failed := 0, 0
	for _, id := range ids {
		switch o := e.get(t, u, id); o.Status {
		case billing.OrderPaid:
			paid++
		case billing.OrderFailed:
			failed++
		}
	}
	if paid != 10 || failed != 40 || e.balance(t, u) != 0 {
		t.Fatalf("%d paid, %d failed, balance %d", paid, failed, e.balance(t, u))
	}
	e.checkLedger(t, u)
}

func TestWebhookCreditsOnceAndRefusesBadOrStaleSignatures(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	body := []byte(fmt.Sprintf(`{"id":"evt_1","type":"topup.succeeded","data":{"user_id":%q,"amount":1500,"currency":"USD"}}`, u))
	now := e.clock.Now()
	if err := e.svc.VerifySignature(billing.Sign("whsec_test", now, body), body); err != nil {
		t.Fatalf("good signature: %v", err)
	}
	for name, h := range map[string]string{
		"wrong secret": billing.Sign("other", now, body),
		"stale":        billing.Sign("whsec_test", now.Add(-6*time.Minute), body),
		"future":       billing.Sign("whsec_test", now.Add(6*time.Minute), body),
		"malformed":    "v1=abc",
		"missing":      "",
	} {
		if err := e.svc.VerifySignature(h, body); apierr.CodeOf(err) != apierr.Unauthorized {
			t.Errorf("%s: %v", name, err)
		}
	}
	var ev billing.WebhookEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{billing.WebhookCredited, billing.WebhookDuplicate} {
		res, err := e.svc.TopUp(context.Background(), ev)
		if err != nil || res.Status != want {
			t.Fatalf("delivery %d: %+v, %v", i, res, err)
		}
	}
	if b := e.balance(t, u); b != 1500 {
		t.Fatalf("balance %d", b)
	}
	e.checkLedger(t, u)
}

func fact(t testing.TB, typ, device, user string, at time.Time) event.Event {
	t.Helper()
	ev, err := events.New(context.Background(), typ, "/cloudphone/device/test", device,
		billing.DeviceFact{SchemaVersion: 1, DeviceID: device, UserID: user, CPUCores: 2, MemoryMB: 2048, At: at})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func (e env) record(t testing.TB, ev event.Event) {
	t.Helper()
	var f billing.DeviceFact
	if err := ev.DataAs(&f); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.RecordDeviceFact(context.Background(), ev, ev.Type(), f); err != nil {
		t.Fatal(err)
	}
}

func TestADeviceRunningNMinutesIsChargedForNMinutes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.credit(t, u, 100000)
	start := e.clock.Now()
	rate := e.svc.RateMilli(2, 2048) // 50 + 2×10 + 2×5 = 80 per hour
	if rate != 80_000 {
		t.Fatalf("rate %d", rate)
	}
	e.record(t, fact(t, billing.EventDeviceRunning, "dev-1", u, start))
	// Charged while running, again later, then stopped out of order and
	// re-delivered: 25 minutes in total, charged once.
	e.clock.Advance(10 * time.Minute)
	if _, err := e.svc.ChargeUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := 100000 - e.balance(t, u); got != billing.UsageCost(10, rate) {
		t.Fatalf("after 10 minutes charged %d, want %d", got, billing.UsageCost(10, rate))
	}
	stop := fact(t, billing.EventDeviceStopped, "dev-1", u, start.Add(25*time.Minute))
	e.record(t, stop)
	e.record(t, stop)
	e.clock.Advance(30 * time.Minute)
	for range 2 {
		if _, err := e.svc.ChargeUsage(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := 100000-e.balance(t, u), billing.UsageCost(25, rate); got != want {
		t.Fatalf("25 minutes charged %d, want %d", got, want)
	}
	// A stop that arrives before its running fact (and an error ends billing).
	e.record(t, fact(t, billing.EventDeviceError, "dev-2", u, start.Add(7*time.Minute)))
	e.record(t, fact(t, billing.EventDeviceRunning, "dev-2", u, start.Add(2*time.Minute)))
	before := e.balance(t, u)
	if _, err := e.svc.ChargeUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := before-e.balance(t, u), billing.UsageCost(5, rate); got != want {
		t.Fatalf("5 minutes up to the error charged %d, want %d", got, want)
	}
	e.checkLedger(t, u)
}

// A balance that cannot pay is never taken below zero: the shortfall is a
// debt, balance.exhausted is sent on every run while a device keeps running
// unpaid (so restarted phones are stopped again) and not once it stops, and
// the debt is collected first when money comes in.
func TestUnpaidUsageIsADebtThatStopsRunningDevicesUntilPaid(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.credit(t, u, 10)
	e.record(t, fact(t, billing.EventDeviceRunning, "dev-x", u, e.clock.Now()))
	for range 2 {
		e.clock.Advance(20 * time.Minute)
		if _, err := e.svc.ChargeUsage(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if b := e.balance(t, u); b != 0 {
		t.Fatalf("balance %d", b)
	}
	if n := len(e.outboxed(t, billing.EventBalanceExhausted, u)); n != 2 {
		t.Fatalf("%d balance.exhausted events while the device ran unpaid, want one per run (2)", n)
	}
	if n := len(e.outboxed(t, billing.EventBalanceLow, u)); n != 1 {
		t.Fatalf("%d balance.low events, want 1", n)
	}
	stop := e.clock.Now()
	e.record(t, fact(t, billing.EventDeviceStopped, "dev-x", u, stop))
	e.clock.Advance(10 * time.Minute)
	if _, err := e.svc.ChargeUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(e.outboxed(t, billing.EventBalanceExhausted, u)); n != 2 {
		t.Fatalf("%d balance.exhausted events once nothing runs, want still 2", n)
	}
	// 40 minutes at the device's rate, minus the 10 paid, is owed; a top-up
	// pays it first.
	owed := billing.UsageCost(40, e.svc.RateMilli(2, 2048)) - 10
	e.credit(t, u, owed+500)
	if _, err := e.svc.ChargeUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b := e.balance(t, u); b != 500 {
		t.Fatalf("after the top-up the balance is %d, want 500 (the debt of %d collected)", b, owed)
	}
	e.checkLedger(t, u)
}

func TestSubscriptionExtendsAndExpiresRevokingItsGrant(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.credit(t, u, 2*990)
	var orders []string
	for range 2 {
		o := e.order(t, u, "basic")
		e.debit(t, o.ID)
		if _, err := e.handleReply(t, reply(t, billing.EventQuotaGranted, o.ID, u, "")); err != nil {
			t.Fatal(err)
		}
		orders = append(orders, o.ID)
	}
	subs, _ := e.svc.Subscriptions(context.Background(), u)
	if len(subs) != 1 || !subs[0].ExpiresAt.Equal(e.clock.Now().Add(60*24*time.Hour)) || subs[0].GrantID != orders[1] {
		t.Fatalf("subscriptions %+v", subs)
	}
	if len(e.outboxed(t, billing.EventQuotaRevokeRequested, orders[0])) != 1 {
		t.Fatal("the replaced grant was not revoked")
	}
	e.clock.Advance(61 * 24 * time.Hour)
	if n, err := e.svc.ExpireSubscriptions(context.Background()); err != nil || n != 1 {
		t.Fatalf("expired %d, %v", n, err)
	}
	if len(e.outboxed(t, billing.EventQuotaRevokeRequested, orders[1])) != 1 {
		t.Fatal("the expired grant was not revoked")
	}
}

func TestPlansAreSeededAndManagedByAdmins(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	list, err := e.svc.Plans(ctx, false)
	if err != nil || len(list) != 3 || list[0].ID != "basic" {
		t.Fatalf("plans %+v, %v", list, err)
	}
	off := false
	req := billing.PlanRequest{Name: "Basic", Price: 1234, Currency: "USD", PeriodDays: 7, Quota: list[0].Quota, Active: &off}
	if _, err := e.svc.UpdatePlan(ctx, "basic", req); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Plan(ctx, "basic", false); apierr.CodeOf(err) != apierr.NotFound {
		t.Fatalf("inactive plan is public: %v", err)
	}
	if _, _, err := e.svc.PlaceOrder(ctx, newUser(), "k", billing.OrderRequest{PlanID: "basic"}); apierr.CodeOf(err) != apierr.Invalid {
		t.Fatalf("order of an inactive plan: %v", err)
	}
	req.ID, req.Currency = "gold", "EUR"
	if _, err := e.svc.CreatePlan(ctx, req); apierr.CodeOf(err) != apierr.Invalid {
		t.Fatalf("plan in another currency: %v", err)
	}
}

// A late stopped fact that shortens an interval charged while the balance was
// empty lowers the debt; it never credits money that was not paid.
func TestALateFactLowersTheDebtAndCreditsNothingUnpaid(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.credit(t, u, 1) // a balance row, then spent at once
	start := e.clock.Now()
	e.record(t, fact(t, billing.EventDeviceRunning, "dev-late", u, start))
	e.clock.Advance(30 * time.Minute)
	if _, err := e.svc.ChargeUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.record(t, fact(t, billing.EventDeviceStopped, "dev-late", u, start.Add(5*time.Minute)))
	if _, err := e.svc.ChargeUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b := e.balance(t, u); b != 0 {
		t.Fatalf("a correction of unpaid usage paid out %d", b)
	}
	var debt int64
	if err := e.svc.Pool().QueryRow(context.Background(), `SELECT unpaid_usage FROM balances WHERE user_id = $1`, u).Scan(&debt); err != nil {
		t.Fatal(err)
	}
	if want := billing.UsageCost(5, e.svc.RateMilli(2, 2048)) - 1; debt != want {
		t.Fatalf("debt %d, want the 5 minutes run less the 1 paid (%d)", debt, want)
	}
	e.checkLedger(t, u)
}

// A phone is paid for when it stops, not at the next charging run: stopping
// and starting again between runs is never free.
func TestAStoppedDeviceIsChargedWhenItsStopIsRecorded(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.credit(t, u, 1000)
	start := e.clock.Now()
	rate := e.svc.RateMilli(2, 2048)
	e.record(t, fact(t, billing.EventDeviceRunning, "dev-s", u, start))
	e.clock.Advance(7 * time.Minute)
	e.record(t, fact(t, billing.EventDeviceStopped, "dev-s", u, start.Add(7*time.Minute)))
	if got, want := 1000-e.balance(t, u), billing.UsageCost(7, rate); got != want {
		t.Fatalf("charged %d when the stop was recorded, want %d for 7 minutes", got, want)
	}
	if _, err := e.svc.ChargeUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := 1000-e.balance(t, u), billing.UsageCost(7, rate); got != want {
		t.Fatalf("a charging run after the stop charged again: %d, want %d", got, want)
	}
	e.checkLedger(t, u)
}

// A phone starts only when the balance, less unpaid usage, pays for an hour
// of it; the refusal is 409 insufficient_funds.
func TestCoverHourNeedsAnHourOfThePhonesUsage(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	hourly := billing.UsageCost(60, e.svc.RateMilli(2, 2048)) // 80
	if _, err := e.svc.CoverHour(context.Background(), u, 2, 2048); !apierr.Is(err, apierr.InsufficientFunds) || apierr.As(err).Status != http.StatusConflict {
		t.Fatalf("no balance: %v, want 409 insufficient_funds", err)
	}
	e.credit(t, u, hourly-1)
	if _, err := e.svc.CoverHour(context.Background(), u, 2, 2048); !apierr.Is(err, apierr.InsufficientFunds) {
		t.Fatalf("a minor unit short: %v", err)
	}
	e.credit(t, u, 1)
	fc, err := e.svc.CoverHour(context.Background(), u, 2, 2048)
	if err != nil || fc.Available != hourly || fc.Hourly != hourly {
		t.Fatalf("exactly an hour: %+v, %v", fc, err)
	}
	if _, err := e.svc.CoverHour(context.Background(), "not-a-uuid", 2, 2048); !apierr.Is(err, apierr.Invalid) {
		t.Fatalf("bad user id: %v", err)
	}
}
