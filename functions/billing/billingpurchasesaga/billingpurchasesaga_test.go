package billingpurchasesaga_test

import (
	"context"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
	"github.com/cloudphone/cloudphone/functions/billing/billingpurchasesaga"
	"github.com/cloudphone/cloudphone/functions/billing/billingtest"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
)

// handle passes e to fn as the broker does, with e as the cause of what it
// writes.
func handle(t *testing.T, fn *billingpurchasesaga.Function, e event.Event) error {
	t.Helper()
	_, err := fn.Handle(events.WithCause(context.Background(), e), e)
	return err
}

func TestTheGrantThroughHandleActivatesThePaidOrder(t *testing.T) {
	t.Parallel()
	env := billingtest.New(t)
	fn := billingpurchasesaga.New(env.Service, logging.Discard())
	ctx := context.Background()
	u := events.NewID()
	env.Credit(t, u, 5000)
	o, _, err := env.Service.PlaceOrder(ctx, u, events.NewID(), billing.OrderRequest{PlanID: "basic"})
	if err != nil {
		t.Fatal(err)
	}
	// The order took its debit when placed; a debit command for it (as an
	// earlier version sent one) is acknowledged and takes nothing more.
	debit, err := events.New(ctx, billingevents.EventDebitRequested, billing.SourceOrders, o.ID,
		billingevents.DebitRequested{SchemaVersion: 1, OrderID: o.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := handle(t, fn, debit); err != nil {
		t.Fatalf("debit: %v", err)
	}
	if b := env.Balance(t, u); b != 5000-o.Price {
		t.Fatalf("balance %d after the debit command, want %d", b, 5000-o.Price)
	}
	if n := len(env.Outboxed(t, userevents.EventQuotaGrantRequested, o.ID)); n != 1 {
		t.Fatalf("%d grant commands, want 1", n)
	}
	granted, err := events.New(ctx, userevents.EventQuotaGranted, "/cloudphone/user/user-quota-grants", o.ID,
		userevents.QuotaReply{GrantID: o.ID, UserID: u})
	if err != nil {
		t.Fatal(err)
	}
	granted.SetExtension(events.ExtCorrelation, o.ID)
	if err := handle(t, fn, granted); err != nil {
		t.Fatalf("granted: %v", err)
	}
	got, err := env.Service.Order(ctx, u, o.ID)
	if err != nil || got.State != billing.OrderActive || got.SubscriptionID == nil {
		t.Fatalf("order after the grant %+v, %v; want active with a subscription", got, err)
	}
	if len(env.Outboxed(t, billingevents.EventOrderActivated, o.ID)) != 1 {
		t.Fatal("no order.activated fact")
	}
}

func TestAnEventOfAnotherTypeOrUnreadableDataIsRefusedForGood(t *testing.T) {
	t.Parallel()
	env := billingtest.New(t)
	fn := billingpurchasesaga.New(env.Service, logging.Discard())
	ctx := context.Background()
	other, err := events.New(ctx, billingevents.EventOrderActivated, "/cloudphone/test", "x", map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	unreadable, err := events.New(ctx, billingevents.EventDebitRequested, "/cloudphone/test", "x", []int{1})
	if err != nil {
		t.Fatal(err)
	}
	for name, e := range map[string]event.Event{"another type": other, "unreadable data": unreadable} {
		if err := handle(t, fn, e); apierr.CodeOf(err) != apierr.Unprocessable {
			t.Errorf("%s: %v, want a permanent refusal", name, err)
		}
	}
}
