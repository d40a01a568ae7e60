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
	basic, err := e.svc.Plan(ctx, "basic", false)
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
		p, err := e.svc.UpdatePlan(ctx, "basic", req)
		if (tc.want != "" && !apierr.Is(err, tc.want)) || (tc.want == "" && (err != nil || p.Quota.IdleMinutes != tc.minutes)) {
			t.Fatalf("%s: %+v, %v", tc.name, p.Quota, err)
		}
	}
}
