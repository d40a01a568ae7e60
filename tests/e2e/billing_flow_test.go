package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/webhooksig"
)

func TestBillingPurchaseThroughTheAPIDebitsOnceAndRaisesTheQuota(t *testing.T) {
	t.Parallel()
	p := startBilling(t, billingOptions{})
	var plan billing.Plan
	if st := call(t, "GET", p.base+"/api/v1/plans/basic", nil, &plan); st != 200 || plan.Price <= 0 {
		t.Fatalf("plan: %d %+v", st, plan)
	}
	u, tok := p.buyer(t, "buyer1", 5000)
	before := p.quota(t, tok)
	o, st := p.order(t, tok, "basic", "k1")
	if st != http.StatusAccepted || o.Status != billing.OrderPaid {
		t.Fatalf("order: %d %+v, want it accepted and paid", st, o)
	}
	o = p.settled(t, tok, o.ID, 20*time.Second)
	if o.Status != billing.OrderActive || o.Saga == nil || len(o.Saga.History) < 4 {
		t.Fatalf("order %+v", o)
	}
	if b := p.balance(t, tok); b != 5000-plan.Price {
		t.Fatalf("balance %d", b)
	}
	debits := 0
	for _, e := range p.entries(t, tok) {
		if e.Kind == billing.KindDebit {
			debits++
		}
	}
	if debits != 1 {
		t.Fatalf("%d debit entries", debits)
	}
	if q, want := p.quota(t, tok), quotaPlus(before, plan.Quota); q != want {
		t.Fatalf("quota %+v, want %+v", q, want)
	}
	var subs struct {
		Subscriptions []billing.Subscription `json:"subscriptions"`
	}
	if call(t, "GET", p.base+"/api/v1/subscriptions", nil, &subs, billingBearer(tok)...); len(subs.Subscriptions) != 1 || subs.Subscriptions[0].GrantID != o.ID {
		t.Fatalf("subscriptions %+v", subs)
	}
	var grants int
	if err := p.db.QueryRow(t.Context(), `SELECT count(*) FROM orders WHERE user_id = $1 AND status = 'active'`, u.ID).Scan(&grants); err != nil || grants != 1 {
		t.Fatalf("%d active orders, %v", grants, err)
	}
	// Another user cannot see the order; the same key and body replays it,
	// another body is refused.
	_, other := p.buyer(t, "snoop", 0)
	if st := call(t, "GET", p.base+"/api/v1/orders/"+o.ID, nil, nil, billingBearer(other)...); st != http.StatusNotFound {
		t.Fatalf("another user's order: %d", st)
	}
	if again, st := p.order(t, tok, "basic", "k1"); st != http.StatusOK || again.ID != o.ID {
		t.Fatalf("replay: %d %s", st, again.ID)
	}
	if _, st := p.order(t, tok, "pro", "k1"); st != http.StatusUnprocessableEntity {
		t.Fatalf("same key, other body: %d", st)
	}
	if st := call(t, "POST", p.base+"/api/v1/orders", map[string]string{"plan_id": "basic"}, nil, billingBearer(tok)...); st != http.StatusBadRequest {
		t.Fatalf("no Idempotency-Key: %d", st)
	}
	p.checkLedger(t, u.ID)
}

func TestBillingInsufficientFundsFailsAndMovesNothing(t *testing.T) {
	t.Parallel()
	p := startBilling(t, billingOptions{})
	u, tok := p.buyer(t, "poor", 100)
	before := p.quota(t, tok)
	o, _ := p.order(t, tok, "pro", "k")
	o = p.settled(t, tok, o.ID, 20*time.Second)
	if o.Status != billing.OrderFailed || o.FailureCode != billing.FailInsufficientFunds {
		t.Fatalf("order %+v", o)
	}
	if b, n := p.balance(t, tok), len(p.entries(t, tok)); b != 100 || n != 1 {
		t.Fatalf("balance %d, %d entries", b, n)
	}
	if q := p.quota(t, tok); q != before {
		t.Fatalf("quota changed: %+v", q)
	}
	p.checkLedger(t, u.ID)
}

// A plan whose quota the user context would refuse cannot be created; one
// stored before that bound (written here straight to the table) is sold,
// its grant refused, and the order refunded and failed.
func TestBillingRefusedGrantRefundsAndFails(t *testing.T) {
	t.Parallel()
	p := startBilling(t, billingOptions{})
	huge := billing.PlanRequest{ID: "huge", Name: "Huge", Price: 700, Currency: "USD", PeriodDays: 30,
		Quota: billing.Quota{MaxDevices: 5_000_000}}
	if st := call(t, "POST", p.base+"/api/v1/admin/plans", huge, nil, billingBearer(p.admin)...); st != http.StatusBadRequest {
		t.Fatalf("create a plan over the user context's bounds: %d, want 400", st)
	}
	huge.Quota.MaxDevices = 5
	if st := call(t, "POST", p.base+"/api/v1/admin/plans", huge, nil, billingBearer(p.admin)...); st != http.StatusCreated {
		t.Fatalf("create plan: %d", st)
	}
	if _, err := p.db.Exec(context.Background(), `UPDATE plans SET max_devices = 5000000 WHERE id = 'huge'`); err != nil {
		t.Fatal(err)
	}
	u, tok := p.buyer(t, "refused", 1000)
	before := p.quota(t, tok)
	o, _ := p.order(t, tok, "huge", "k")
	o = p.settled(t, tok, o.ID, 20*time.Second)
	if o.Status != billing.OrderFailed || o.FailureCode != billing.FailGrantRefused {
		t.Fatalf("order %+v", o)
	}
	kinds := []string{}
	for _, e := range p.entries(t, tok) {
		kinds = append(kinds, e.Kind)
	}
	if b := p.balance(t, tok); b != 1000 || fmt.Sprint(kinds) != "[refund debit credit]" {
		t.Fatalf("balance %d, ledger %v", b, kinds)
	}
	if q := p.quota(t, tok); q != before {
		t.Fatalf("quota changed: %+v", q)
	}
	p.checkLedger(t, u.ID)
}

// The user context never answers (its function is not running): the sweeper
// compensates after the deadline.
func TestBillingUnansweredGrantIsRefundedAfterTheDeadline(t *testing.T) {
	t.Parallel()
	p := startBilling(t, billingOptions{without: []string{"user-quota-grants"}, extra: map[string]string{"SAGA_DEADLINE": "2s"}})
	u, tok := p.buyer(t, "ignored", 1000)
	before := p.quota(t, tok)
	o, _ := p.order(t, tok, "basic", "k")
	eventually(t, 10*time.Second, "debited", func() bool { return p.getOrder(t, tok, o.ID).Status == billing.OrderPaid })
	time.Sleep(2 * time.Second)
	p.postEvent(t, billingevents.EventSweepRequested, "", events.Tick{ScheduledAt: time.Now().UTC()})
	o = p.settled(t, tok, o.ID, 20*time.Second)
	if o.Status != billing.OrderFailed || o.FailureCode != billing.FailTimeout {
		t.Fatalf("order %+v", o)
	}
	if b, n := p.balance(t, tok), len(p.entries(t, tok)); b != 1000 || n != 3 {
		t.Fatalf("balance %d, %d entries", b, n)
	}
	if q := p.quota(t, tok); q != before {
		t.Fatalf("quota changed: %+v", q)
	}
	p.checkLedger(t, u.ID)
}

// Every saga event posted again through the broker changes nothing.
func TestBillingSagaEventsDeliveredTwiceEndTheSame(t *testing.T) {
	t.Parallel()
	p := startBilling(t, billingOptions{})
	u, tok := p.buyer(t, "twice", 990)
	o, _ := p.order(t, tok, "basic", "k")
	o = p.settled(t, tok, o.ID, 20*time.Second)
	if o.Status != billing.OrderActive {
		t.Fatalf("order %+v", o)
	}
	quota := p.quota(t, tok)
	p.postEvent(t, billingevents.EventDebitRequested, o.ID, billingevents.DebitRequested{SchemaVersion: 1, OrderID: o.ID})
	p.postEvent(t, userevents.EventQuotaGrantRequested, o.ID, userevents.QuotaGrantRequested{SchemaVersion: 1, GrantID: o.ID, UserID: u.ID,
		PlanID: "basic", Limits: userevents.Limits(o.Quota)})
	p.postEvent(t, userevents.EventQuotaGranted, o.ID, userevents.QuotaReply{GrantID: o.ID, UserID: u.ID})
	p.postEvent(t, userevents.EventQuotaGrantRefused, o.ID, userevents.QuotaReply{GrantID: o.ID, UserID: u.ID, Reason: "revoked"})
	time.Sleep(1500 * time.Millisecond)
	if got := p.getOrder(t, tok, o.ID); got.Status != billing.OrderActive || p.balance(t, tok) != 0 || len(p.entries(t, tok)) != 2 {
		t.Fatalf("order %s, balance %d, %d entries", got.Status, p.balance(t, tok), len(p.entries(t, tok)))
	}
	if q := p.quota(t, tok); q != quota {
		t.Fatalf("quota changed: %+v → %+v", quota, q)
	}
	p.checkLedger(t, u.ID)
}

// 50 concurrent orders from one user whose balance covers exactly 10.
func TestBillingFiftyConcurrentOrdersNeverOverdraw(t *testing.T) {
	t.Parallel()
	p := startBilling(t, billingOptions{})
	u, tok := p.buyer(t, "burst", 10*990)
	ids := make([]string, 50)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			o, st := p.order(t, tok, "basic", fmt.Sprintf("burst-%d", i))
			if st != http.StatusAccepted {
				t.Errorf("order %d: %d", i, st)
			}
			ids[i] = o.ID
		})
	}
	wg.Wait()
	active, failed := 0, 0
	for _, id := range ids {
		switch o := p.settled(t, tok, id, 60*time.Second); {
		case o.Status == billing.OrderActive:
			active++
		case o.FailureCode == billing.FailInsufficientFunds:
			failed++
		default:
			t.Errorf("order %s: %s %s", id, o.Status, o.FailureCode)
		}
	}
	if active != 10 || failed != 40 || p.balance(t, tok) != 0 {
		t.Fatalf("%d active, %d failed, balance %d", active, failed, p.balance(t, tok))
	}
	p.checkLedger(t, u.ID)
}

func TestBillingWebhookTopsUpOnceAndRefusesBadSignatures(t *testing.T) {
	t.Parallel()
	p := startBilling(t, billingOptions{})
	u, tok := p.buyer(t, "payer", 0)
	body, _ := json.Marshal(map[string]any{"id": "evt_" + u.ID, "type": "topup.succeeded",
		"data": map[string]any{"user_id": u.ID, "amount": 2500, "currency": "USD"}})
	post := func(sig string) (int, billing.WebhookResult, string) {
		var res billing.WebhookResult
		var raw map[string]map[string]string
		req, _ := http.NewRequest("POST", p.base+"/api/v1/payments/webhook", bytesReader(body))
		req.Header.Set("Content-Type", "application/json")
		if sig != "" {
			req.Header.Set(webhooksig.Header, sig)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := readAll(resp)
		_ = json.Unmarshal(b, &res)
		_ = json.Unmarshal(b, &raw)
		return resp.StatusCode, res, raw["error"]["code"]
	}
	now := time.Now()
	for name, sig := range map[string]string{
		"wrong secret": webhooksig.Sign("not the secret", now, body),
		"stale":        webhooksig.Sign(billingWebhookSecret, now.Add(-10*time.Minute), body),
		"missing":      "",
	} {
		if st, _, code := post(sig); st != http.StatusUnauthorized || code != "unauthorized" {
			t.Errorf("%s: %d %s", name, st, code)
		}
	}
	for _, want := range []string{billing.WebhookCredited, billing.WebhookDuplicate} {
		if st, res, _ := post(webhooksig.Sign(billingWebhookSecret, time.Now(), body)); st != 200 || res.Status != want {
			t.Fatalf("delivery: %d %+v, want %s", st, res, want)
		}
	}
	if b := p.balance(t, tok); b != 2500 {
		t.Fatalf("balance %d", b)
	}
	p.checkLedger(t, u.ID)
}

// A device that runs N minutes is charged for N minutes (the facts carry
// the times; the charging job runs on demand).
func TestBillingMeteringChargesTheMinutesADeviceRan(t *testing.T) {
	t.Parallel()
	p := startBilling(t, billingOptions{})
	u, tok := p.buyer(t, "meter", 10000)
	start := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	dev := "dev-" + u.ID[:8]
	// Stopped arrives before running.
	p.postEvent(t, deviceevents.EventStopped, dev, deviceevents.Fact{SchemaVersion: 1, DeviceID: dev, UserID: u.ID, At: start.Add(37 * time.Minute)})
	p.postEvent(t, deviceevents.EventRunning, dev, deviceevents.Fact{SchemaVersion: 1, DeviceID: dev, UserID: u.ID, CPUCores: 2, MemoryMB: 2048, At: start})
	eventually(t, 10*time.Second, "facts recorded", func() bool {
		var n int
		_ = p.db.QueryRow(t.Context(), `SELECT count(*) FROM device_facts WHERE device_id = $1`, dev).Scan(&n)
		return n == 2
	})
	p.postEvent(t, billingevents.EventChargeRequested, "", events.Tick{ScheduledAt: time.Now().UTC()})
	want := 10000 - billing.UsageCost(37, 80_000)
	eventually(t, 10*time.Second, "usage charged", func() bool { return p.balance(t, tok) == want })
	p.postEvent(t, billingevents.EventChargeRequested, "", events.Tick{ScheduledAt: time.Now().UTC()})
	time.Sleep(time.Second)
	if b := p.balance(t, tok); b != want {
		t.Fatalf("charged again: %d, want %d", b, want)
	}
	p.checkLedger(t, u.ID)
}

// Money cannot be credited to a user id that does not exist: the admin
// credit answers 404 and the signed top-up webhook 422, and neither writes a
// ledger entry, a balance or a payment.
func TestBillingCreditAndTopUpForAnUnknownUserAreRefusedAndWriteNothing(t *testing.T) {
	t.Parallel()
	p := startBilling(t, billingOptions{})
	nobody := "7f1d4b8e-3c2a-4e5f-9a6b-0c1d2e3f4a5b"
	var resp map[string]map[string]string
	if st := call(t, "POST", p.base+"/api/v1/admin/users/"+nobody+"/credit", map[string]any{"amount": 1000, "reason": "e2e"},
		&resp, billingBearer(p.admin)...); st != http.StatusNotFound || resp["error"]["code"] != "not_found" {
		t.Fatalf("credit to nobody: %d %v, want 404 not_found", st, resp)
	}
	body, _ := json.Marshal(map[string]any{"id": "evt_nobody", "type": "topup.succeeded",
		"data": map[string]any{"user_id": nobody, "amount": 2500, "currency": "USD"}})
	req, _ := http.NewRequest("POST", p.base+"/api/v1/payments/webhook", bytesReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhooksig.Header, webhooksig.Sign(billingWebhookSecret, time.Now(), body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw := readAll(res)
	res.Body.Close()
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(raw), `"unprocessable"`) {
		t.Fatalf("top-up for nobody: %d %s, want 422 unprocessable", res.StatusCode, raw)
	}
	for _, table := range []string{"ledger", "balances", "payments"} {
		var n int
		if err := p.db.QueryRow(t.Context(), `SELECT count(*) FROM `+table+` WHERE user_id = $1`, nobody).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s has %d rows of the unknown user (%v)", table, n, err)
		}
	}
	// A real user is still credited.
	u, tok := p.buyer(t, "known", 700)
	if b := p.balance(t, tok); b != 700 {
		t.Fatalf("balance of %s: %d", u.ID, b)
	}
}
