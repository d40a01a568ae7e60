package billing_test

import (
	"context"
	"testing"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/shared/apierr"
)

func TestIdempotencyKeyReplaysTheOrderAndRefusesAnotherBody(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := newUser()
	ctx := context.Background()
	a, created, err := e.Service.PlaceOrder(ctx, u, "key-1", billing.OrderRequest{PlanID: "basic"})
	if err != nil || !created {
		t.Fatal(err)
	}
	b, created, err := e.Service.PlaceOrder(ctx, u, "key-1", billing.OrderRequest{PlanID: "basic"})
	if err != nil || created || b.ID != a.ID {
		t.Fatalf("replay: %v, created %v, %s vs %s", err, created, b.ID, a.ID)
	}
	if _, _, err := e.Service.PlaceOrder(ctx, u, "key-1", billing.OrderRequest{PlanID: "pro"}); apierr.CodeOf(err) != apierr.Unprocessable {
		t.Fatalf("other body: %v", err)
	}
	if _, _, err := e.Service.PlaceOrder(ctx, newUser(), "key-1", billing.OrderRequest{PlanID: "pro"}); err != nil {
		t.Fatalf("another user's key: %v", err)
	}
	if _, _, err := e.Service.PlaceOrder(ctx, u, "", billing.OrderRequest{PlanID: "basic"}); apierr.CodeOf(err) != apierr.Invalid {
		t.Fatalf("no key: %v", err)
	}
	if _, err := e.Service.Order(ctx, newUser(), a.ID); apierr.CodeOf(err) != apierr.NotFound {
		t.Fatalf("another user's order: %v", err)
	}
}
