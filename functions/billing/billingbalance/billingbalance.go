// Package billingbalance is the billing-balance function: a user's balance and
// ledger, and the administrators' credit.
package billingbalance

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/httpjson"
)

// Name is the function's name in the catalog.
const Name = "billing-balance"

// The function's routes.
const (
	RouteBalance      = "GET /api/v1/balance"
	RouteTransactions = "GET /api/v1/balance/transactions"
	RouteCredit       = "POST /api/v1/admin/users/{id}/credit"
)

// Routes lists every route, for the catalog.
var Routes = []string{RouteBalance, RouteTransactions, RouteCredit}

// Function answers RouteBalance and RouteTransactions (?limit 1–100, ?cursor)
// for the caller's own balance (billing:read), and RouteCredit (201, the new
// ledger entry) for administrators with admin:credit. Safe for concurrent use.
type Function struct{ mux *http.ServeMux }

// New returns the function over svc, checking tokens with v. It panics when
// an argument is nil.
func New(svc *billing.Service, v *auth.Verifier, log *slog.Logger) *Function {
	if svc == nil || v == nil || log == nil {
		panic("balance: New needs a billing.Service, an auth.Verifier and a logger")
	}
	mux := httpjson.NewMux(log)
	require := auth.Require(v, log)
	read := auth.Access{Permission: billing.PermRead}
	mux.Handle(RouteBalance, require(auth.Route(read, log,
		func(ctx context.Context, p auth.Principal, _ *http.Request) (int, any, error) {
			b, err := svc.Balance(ctx, p.UserID)
			return http.StatusOK, b, err
		})))
	mux.Handle(RouteTransactions, require(auth.Route(read, log,
		func(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
			limit, err := httpjson.Limit(r, billing.MaxPageSize)
			if err != nil {
				return 0, nil, err
			}
			page, err := svc.Transactions(ctx, p.UserID, limit, r.URL.Query().Get("cursor"))
			return http.StatusOK, page, err
		})))
	mux.Handle(RouteCredit, require(auth.Route(auth.Access{Role: auth.RoleAdmin, Permission: billing.PermAdminCredit}, log,
		func(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
			var req billing.CreditRequest
			if err := httpjson.Decode(r, &req); err != nil {
				return 0, nil, err
			}
			e, err := svc.Credit(ctx, p.UserID, r.PathValue("id"), req)
			return http.StatusCreated, e, err
		})))
	return &Function{mux: mux}
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }
