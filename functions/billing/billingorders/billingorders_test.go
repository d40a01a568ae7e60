package billingorders_test

import (
	"net/http"
	"testing"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/billingorders"
	"github.com/cloudphone/cloudphone/functions/billing/billingtest"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function/functiontest"
	"github.com/cloudphone/cloudphone/shared/logging"
)

func TestPlacingAnOrderTwiceUnderOneKeyPlacesItOnceAndOnlyItsOwnerSeesIt(t *testing.T) {
	t.Parallel()
	env := billingtest.New(t)
	fn := billingorders.New(env.Service, env.Service.Verifier(), logging.Discard())
	u := events.NewID()
	env.Credit(t, u, 5000)
	tok := env.UserToken(t, u)
	key := events.NewID()
	req := billing.OrderRequest{PlanID: "basic"}

	var placed, again billing.Order
	billingtest.Decode(t, functiontest.Call(fn.Handle, "POST", "/api/v1/orders", tok, req, billingorders.IdempotencyHeader, key),
		http.StatusAccepted, &placed)
	if placed.UserID != u || placed.PlanID != "basic" || placed.State != billing.OrderPaid {
		t.Fatalf("placed %+v", placed)
	}
	billingtest.Decode(t, functiontest.Call(fn.Handle, "POST", "/api/v1/orders", tok, req, billingorders.IdempotencyHeader, key),
		http.StatusOK, &again)
	if again.ID != placed.ID {
		t.Fatalf("the same key placed a second order %s (first %s)", again.ID, placed.ID)
	}
	if n := len(env.Outboxed(t, userevents.EventQuotaGrantRequested, placed.ID)); n != 1 {
		t.Fatalf("%d grant commands, want 1", n)
	}
	if b := env.Balance(t, u); b != 5000-placed.Price {
		t.Fatalf("balance %d, want the price taken once", b)
	}
	if w := functiontest.Call(fn.Handle, "POST", "/api/v1/orders", tok, billing.OrderRequest{PlanID: "pro"},
		billingorders.IdempotencyHeader, key); w.Code != http.StatusUnprocessableEntity {
		t.Fatalf("the same key with another plan: %d %s, want 422", w.Code, w.Body)
	}

	var got billing.Order
	billingtest.Decode(t, functiontest.Call(fn.Handle, "GET", "/api/v1/orders/"+placed.ID, tok, nil), http.StatusOK, &got)
	if got.ID != placed.ID {
		t.Fatalf("got %+v", got)
	}
	var page billing.OrdersPage
	billingtest.Decode(t, functiontest.Call(fn.Handle, "GET", "/api/v1/orders?limit=5", tok, nil), http.StatusOK, &page)
	if len(page.Orders) != 1 || page.Orders[0].ID != placed.ID {
		t.Fatalf("orders %+v", page.Orders)
	}
	var subs billingorders.Subscriptions
	billingtest.Decode(t, functiontest.Call(fn.Handle, "GET", "/api/v1/subscriptions", tok, nil), http.StatusOK, &subs)
	if len(subs.Subscriptions) != 0 {
		t.Fatalf("subscriptions %+v before the grant", subs.Subscriptions)
	}

	other := env.UserToken(t, events.NewID())
	if w := functiontest.Call(fn.Handle, "GET", "/api/v1/orders/"+placed.ID, other, nil); w.Code != http.StatusNotFound {
		t.Fatalf("another user's order: %d, want 404", w.Code)
	}
	if w := functiontest.Call(fn.Handle, "GET", "/api/v1/orders", "", nil); w.Code != http.StatusUnauthorized {
		t.Fatalf("orders without a token: %d, want 401", w.Code)
	}
	readOnly := env.Token(t, u, []string{"user"}, billing.PermRead)
	if w := functiontest.Call(fn.Handle, "POST", "/api/v1/orders", readOnly, req, billingorders.IdempotencyHeader, events.NewID()); w.Code != http.StatusForbidden {
		t.Fatalf("an order without billing:order: %d, want 403", w.Code)
	}
}
