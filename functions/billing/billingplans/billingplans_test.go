package billingplans_test

import (
	"net/http"
	"testing"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/billingplans"
	"github.com/cloudphone/cloudphone/functions/billing/billingtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function/functiontest"
	"github.com/cloudphone/cloudphone/shared/logging"
)

func TestAnyoneReadsTheActivePlansAndOnlyAdminsCreateAndChangeThem(t *testing.T) {
	t.Parallel()
	env := billingtest.New(t)
	fn := billingplans.New(env.Service, env.Service.Verifier(), logging.Discard())

	var list billingplans.List
	billingtest.Decode(t, functiontest.Call(fn.Handle, "GET", "/api/v1/plans", "", nil), http.StatusOK, &list)
	if len(list.Plans) != 3 || list.Plans[0].ID != "basic" {
		t.Fatalf("public plans %+v, want the three seeded", list.Plans)
	}
	var basic billing.Plan
	billingtest.Decode(t, functiontest.Call(fn.Handle, "GET", "/api/v1/plans/basic", "", nil), http.StatusOK, &basic)

	gold := billing.PlanRequest{ID: "gold", Name: "Gold", Price: 4990, Currency: "USD", PeriodDays: 30, Quota: basic.Quota}
	user := env.UserToken(t, events.NewID())
	if w := functiontest.Call(fn.Handle, "POST", "/api/v1/admin/plans", user, gold); w.Code != http.StatusForbidden {
		t.Fatalf("a user created a plan: %d %s", w.Code, w.Body)
	}
	if w := functiontest.Call(fn.Handle, "POST", "/api/v1/admin/plans", "", gold); w.Code != http.StatusUnauthorized {
		t.Fatalf("nobody created a plan: %d %s", w.Code, w.Body)
	}
	admin := env.AdminToken(t, events.NewID())
	var created billing.Plan
	billingtest.Decode(t, functiontest.Call(fn.Handle, "POST", "/api/v1/admin/plans", admin, gold), http.StatusCreated, &created)
	if created.ID != "gold" || created.Price != 4990 || !created.Active {
		t.Fatalf("created %+v", created)
	}

	off := false
	gold.ID, gold.Active = "", &off
	var updated billing.Plan
	billingtest.Decode(t, functiontest.Call(fn.Handle, "PUT", "/api/v1/admin/plans/gold", admin, gold), http.StatusOK, &updated)
	if updated.Active {
		t.Fatalf("updated %+v, want inactive", updated)
	}
	if w := functiontest.Call(fn.Handle, "GET", "/api/v1/plans/gold", "", nil); w.Code != http.StatusNotFound {
		t.Fatalf("an inactive plan is public: %d %s", w.Code, w.Body)
	}
	if w := functiontest.Call(fn.Handle, "GET", "/api/v1/plans/nope", "", nil); w.Code != http.StatusNotFound {
		t.Fatalf("unknown plan: %d", w.Code)
	}
}
