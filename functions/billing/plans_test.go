package billing_test

import (
	"context"
	"testing"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/shared/apierr"
)

func TestPlansCarryAnIdleLimitWithinAWeek(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	basic, err := e.Service.Plan(ctx, "basic", false)
	if err != nil || basic.Quota.IdleMinutes != 60 {
		t.Fatalf("seeded basic: %+v, %v; want 60 idle minutes", basic.Quota, err)
	}
	req := billing.PlanRequest{Name: "Basic", Price: 100, Currency: "USD", PeriodDays: 1, Quota: basic.Quota}
	for _, tc := range []struct {
		name    string
		minutes int
		want    apierr.Code
	}{
		{"none added", 0, ""},
		{"a week", 7 * 24 * 60, ""},
		{"negative", -1, apierr.Invalid},
		{"over a week", 7*24*60 + 1, apierr.Invalid},
	} {
		req.Quota.IdleMinutes = tc.minutes
		p, err := e.Service.UpdatePlan(ctx, "basic", req)
		if (tc.want != "" && !apierr.Is(err, tc.want)) || (tc.want == "" && (err != nil || p.Quota.IdleMinutes != tc.minutes)) {
			t.Fatalf("%s: %+v, %v", tc.name, p.Quota, err)
		}
	}
}

func TestPlansAreSeededAndManagedByAdmins(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	list, err := e.Service.Plans(ctx, false)
	if err != nil || len(list) != 3 || list[0].ID != "basic" {
		t.Fatalf("plans %+v, %v", list, err)
	}
	off := false
	req := billing.PlanRequest{Name: "Basic", Price: 1234, Currency: "USD", PeriodDays: 7, Quota: list[0].Quota, Active: &off}
	if _, err := e.Service.UpdatePlan(ctx, "basic", req); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Service.Plan(ctx, "basic", false); apierr.CodeOf(err) != apierr.NotFound {
		t.Fatalf("inactive plan is public: %v", err)
	}
	if _, _, err := e.Service.PlaceOrder(ctx, newUser(), "k", billing.OrderRequest{PlanID: "basic"}); apierr.CodeOf(err) != apierr.Invalid {
		t.Fatalf("order of an inactive plan: %v", err)
	}
	req.ID, req.Currency = "gold", "EUR"
	if _, err := e.Service.CreatePlan(ctx, req); apierr.CodeOf(err) != apierr.Invalid {
		t.Fatalf("plan in another currency: %v", err)
	}
}
