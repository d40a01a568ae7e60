package billing_test

import (
	"context"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/events"
)

func TestPurchaseSagaHappyPathDebitsOnceGrantsAndActivates(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.Credit(t, u, 5000)
	o := e.order(t, u, "basic")
	if o.Status != billing.OrderPaid || o.Price != 990 || e.Balance(t, u) != 5000-990 {
		t.Fatalf("new order %+v, balance %d: want it paid when placed", o, e.Balance(t, u))
	}
	if got := e.get(t, u, o.ID); got.Saga.Step != billing.StepGrant {
		t.Fatalf("placed order's saga at %s, want %s", got.Saga.Step, billing.StepGrant)
	}
	if n := len(e.Outboxed(t, billingevents.EventDebitRequested, o.ID)); n != 0 {
		t.Fatalf("%d debit commands: the order's own debit needs none", n)
	}
	grants := e.Outboxed(t, userevents.EventQuotaGrantRequested, o.ID)
	if len(grants) != 1 {
		t.Fatalf("%d grant commands", len(grants))
	}
	var g userevents.QuotaGrantRequested
	if err := grants[0].DataAs(&g); err != nil || g.GrantID != o.ID || g.UserID != u || g.MaxDevices != 2 {
		t.Fatalf("grant command %+v, %v", g, err)
	}
	if c, _ := grants[0].Extensions()[events.ExtCorrelation].(string); c != o.ID {
		t.Fatalf("grant command correlationid %q, want the order id", c)
	}
	if out, err := e.handleReply(t, reply(t, userevents.EventQuotaGranted, o.ID, u, "")); err != nil || out != billing.OutcomeApplied {
		t.Fatalf("granted: %s, %v", out, err)
	}
	got := e.get(t, u, o.ID)
	if got.Status != billing.OrderActive || got.Saga.Status != billing.SagaCompleted || got.SubscriptionID == nil {
		t.Fatalf("after grant: %+v", got)
	}
	if b := e.Balance(t, u); b != 5000-990 {
		t.Fatalf("balance %d", b)
	}
	subs, _ := e.Service.Subscriptions(context.Background(), u)
	if len(subs) != 1 || !subs[0].ExpiresAt.Equal(e.Clock.Now().Add(30*24*time.Hour)) || subs[0].GrantID != o.ID {
		t.Fatalf("subscriptions %+v", subs)
	}
	if len(e.Outboxed(t, billingevents.EventOrderActivated, o.ID)) != 1 {
		t.Fatal("no order.activated fact")
	}
	e.checkLedger(t, u)
}

func TestInsufficientFundsFailsTheOrderAndMovesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.Credit(t, u, 500)
	o := e.order(t, u, "basic")
	if o.Status != billing.OrderFailed || o.FailureCode != billing.FailInsufficientFunds {
		t.Fatalf("placed order %+v: want it failed at once", o)
	}
	got := e.get(t, u, o.ID)
	if got.Status != billing.OrderFailed || got.FailureCode != billing.FailInsufficientFunds {
		t.Fatalf("order %+v", got)
	}
	if b := e.Balance(t, u); b != 500 || len(e.ledger(t, u)) != 1 {
		t.Fatalf("balance %d, %d entries", b, len(e.ledger(t, u)))
	}
	if len(e.Outboxed(t, userevents.EventQuotaGrantRequested, o.ID)) != 0 || len(e.Outboxed(t, billingevents.EventOrderFailed, o.ID)) != 1 {
		t.Fatal("want no grant command and one order.failed")
	}
}

func TestRefusedGrantRefundsAndFails(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.Credit(t, u, 990)
	o := e.order(t, u, "basic")
	if _, err := e.handleReply(t, reply(t, userevents.EventQuotaGrantRefused, o.ID, u, "unknown_user")); err != nil {
		t.Fatal(err)
	}
	got := e.get(t, u, o.ID)
	if got.Status != billing.OrderFailed || got.FailureCode != billing.FailGrantRefused {
		t.Fatalf("order %+v", got)
	}
	l := e.ledger(t, u)
	if e.Balance(t, u) != 990 || len(l) != 3 || l[0].Kind != billing.KindRefund || l[1].Kind != billing.KindDebit {
		t.Fatalf("balance %d, ledger %+v", e.Balance(t, u), l)
	}
	if len(e.Outboxed(t, userevents.EventQuotaRevokeRequested, o.ID)) != 0 {
		t.Fatal("a refused grant needs no revoke")
	}
	e.checkLedger(t, u)
}

func TestSweeperCompensatesASagaWhoseGrantNeverAnswers(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.Credit(t, u, 990)
	o := e.order(t, u, "basic")
	if n, _ := e.Service.SweepSagas(context.Background()); n != 0 {
		t.Fatalf("swept %d sagas before their deadline", n)
	}
	e.Clock.Advance(5*time.Minute + time.Second)
	rep, err := e.Service.RunScheduled(context.Background(), billingevents.EventSweepRequested, time.Time{}, nil)
	if err != nil || rep.Swept != 1 {
		t.Fatalf("sweep: %+v, %v", rep, err)
	}
	got := e.get(t, u, o.ID)
	if got.Status != billing.OrderFailed || got.FailureCode != billing.FailTimeout {
		t.Fatalf("order %+v", got)
	}
	if e.Balance(t, u) != 990 || len(e.Outboxed(t, userevents.EventQuotaRevokeRequested, o.ID)) != 1 {
		t.Fatal("want the price refunded and the grant revoked")
	}
	// The grant answers late: acknowledged, nothing changes.
	if out, err := e.handleReply(t, reply(t, userevents.EventQuotaGranted, o.ID, u, "")); err != nil || out != billing.OutcomeIgnored {
		t.Fatalf("late granted: %s, %v", out, err)
	}
	if out, _ := e.handleReply(t, reply(t, userevents.EventQuotaRevoked, o.ID, u, "")); out != billing.OutcomeApplied {
		t.Fatalf("revoked confirmation: %s", out)
	}
	if e.get(t, u, o.ID).Status != billing.OrderFailed || e.Balance(t, u) != 990 {
		t.Fatal("a late reply changed the outcome")
	}
	e.checkLedger(t, u)
}

// An order placed by an earlier version waits at step debit for its debit
// command (orders now take their debit when placed): that command, and the
// replies after it, still end the saga once, however often and in whatever
// order they come.
func TestSagaEventsDeliveredTwiceAndOutOfOrderEndTheSame(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	e.Credit(t, u, 990)
	id, debit := e.legacyOrder(t, u, "basic")
	o := billing.Order{ID: id}
	granted := reply(t, userevents.EventQuotaGranted, o.ID, u, "")
	// The reply before its step: not yet, and the inbox does not keep it.
	if _, err := e.handleReply(t, granted); apierr.CodeOf(err) != apierr.Conflict {
		t.Fatalf("early reply: %v, want not-yet (conflict)", err)
	}
	if out := e.handleDebit(t, debit); out != billing.OutcomeApplied {
		t.Fatal(out)
	}
	if got := e.get(t, u, o.ID); got.Status != billing.OrderPaid || len(e.Outboxed(t, userevents.EventQuotaGrantRequested, o.ID)) != 1 {
		t.Fatalf("after the debit command: %s, want paid with the grant requested", got.Status)
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
	if out, _ := e.handleReply(t, reply(t, userevents.EventQuotaGrantRefused, o.ID, u, "revoked")); out != billing.OutcomeIgnored {
		t.Fatalf("refusal after activation: %s", out)
	}
	got := e.get(t, u, o.ID)
	if got.Status != billing.OrderActive || e.Balance(t, u) != 0 || len(e.ledger(t, u)) != 2 {
		t.Fatalf("order %s, balance %d, %d entries", got.Status, e.Balance(t, u), len(e.ledger(t, u)))
	}
	e.checkLedger(t, u)
}
