// Package billingplans is the billing-plans function: the public list of active
// plans and the administrators' plan management.
package billingplans

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/httpjson"
)

// Name is the function's name in the catalog.
const Name = "billing-plans"

// The function's routes.
const (
	RouteList   = "GET /api/v1/plans"
	RouteGet    = "GET /api/v1/plans/{id}"
	RouteCreate = "POST /api/v1/admin/plans"
	RouteUpdate = "PUT /api/v1/admin/plans/{id}"
)

// Routes lists every route, for the catalog.
var Routes = []string{RouteList, RouteGet, RouteCreate, RouteUpdate}

// Function answers RouteList and RouteGet for anyone (active plans only; an
// inactive or unknown plan is 404), and RouteCreate (201) and RouteUpdate for
// bearers of a token with the admin role and the admin:plans permission.
// Safe for concurrent use.
type Function struct{ mux *http.ServeMux }

// New returns the function over svc, checking tokens with v. It panics when
// an argument is nil.
func New(svc *billing.Service, v *auth.Verifier, log *slog.Logger) *Function {
	if svc == nil || v == nil || log == nil {
		panic("plans: New needs a billing.Service, an auth.Verifier and a logger")
	}
	mux := httpjson.NewMux(log)
	require := auth.Require(v, log)
	admin := auth.Access{Role: auth.RoleAdmin, Permission: billing.PermAdminPlans}
	mux.Handle(RouteList, auth.Route(auth.Access{Public: true}, log,
		func(ctx context.Context, _ auth.Principal, _ *http.Request) (int, any, error) {
			list, err := svc.Plans(ctx, false)
			return http.StatusOK, List{Plans: list}, err
		}))
	mux.Handle(RouteGet, auth.Route(auth.Access{Public: true}, log,
		func(ctx context.Context, _ auth.Principal, r *http.Request) (int, any, error) {
			p, err := svc.Plan(ctx, r.PathValue("id"), false)
			return http.StatusOK, p, err
		}))
	mux.Handle(RouteCreate, require(auth.Route(admin, log,
		func(ctx context.Context, _ auth.Principal, r *http.Request) (int, any, error) {
			var req billing.PlanRequest
			if err := httpjson.Decode(r, &req); err != nil {
				return 0, nil, err
			}
			p, err := svc.CreatePlan(ctx, req)
			return http.StatusCreated, p, err
		})))
	mux.Handle(RouteUpdate, require(auth.Route(admin, log,
		func(ctx context.Context, _ auth.Principal, r *http.Request) (int, any, error) {
			var req billing.PlanRequest
			if err := httpjson.Decode(r, &req); err != nil {
				return 0, nil, err
			}
			p, err := svc.UpdatePlan(ctx, r.PathValue("id"), req)
			return http.StatusOK, p, err
		})))
	return &Function{mux: mux}
}

// List is the answer of RouteList.
type List struct {
	Plans []billing.Plan `json:"plans"`
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }
