// Package billingorders is the billing-orders function: placing an order starts the
// purchase saga; users read their orders (with the saga's steps) and
// subscriptions.
package billingorders

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/httpjson"
)

// Name is the function's name in the catalog.
const Name = "billing-orders"

// The function's routes.
const (
	RoutePlace         = "POST /api/v1/orders"
	RouteList          = "GET /api/v1/orders"
	RouteGet           = "GET /api/v1/orders/{id}"
	RouteSubscriptions = "GET /api/v1/subscriptions"
)

// Routes lists every route, for the catalog.
var Routes = []string{RoutePlace, RouteList, RouteGet, RouteSubscriptions}

// IdempotencyHeader names the key that makes placing an order idempotent.
const IdempotencyHeader = "Idempotency-Key"

// Function answers Routes for the signed-in caller. RoutePlace (billing:order)
// needs IdempotencyHeader and answers 202 with a new order, 200 with the
// order an earlier request with the same key and body placed, 422 for the
// same key with another body. RouteList (?limit, ?cursor), RouteGet and
// RouteSubscriptions (billing:read) show only the caller's own; another
// user's order is 404. Safe for concurrent use.
type Function struct{ mux *http.ServeMux }

// New returns the function over svc, checking tokens with v. It panics when
// an argument is nil.
func New(svc *billing.Service, v *auth.Verifier, log *slog.Logger) *Function {
	if svc == nil || v == nil || log == nil {
		panic("orders: New needs a billing.Service, an auth.Verifier and a logger")
	}
	mux := httpjson.NewMux(log)
	require := auth.Require(v, log)
	read := auth.Access{Permission: billing.PermRead}
	mux.Handle(RoutePlace, require(auth.Route(auth.Access{Permission: billing.PermOrder}, log,
		func(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
			var req billing.OrderRequest
			if err := httpjson.Decode(r, &req); err != nil {
				return 0, nil, err
			}
			o, created, err := svc.PlaceOrder(ctx, p.UserID, r.Header.Get(IdempotencyHeader), req)
			if !created {
				return http.StatusOK, o, err
			}
			return http.StatusAccepted, o, err
		})))
	mux.Handle(RouteList, require(auth.Route(read, log,
		func(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
			limit, err := httpjson.Limit(r, billing.MaxPageSize)
			if err != nil {
				return 0, nil, err
			}
			page, err := svc.Orders(ctx, p.UserID, limit, r.URL.Query().Get("cursor"))
			return http.StatusOK, page, err
		})))
	mux.Handle(RouteGet, require(auth.Route(read, log,
		func(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
			o, err := svc.Order(ctx, p.UserID, r.PathValue("id"))
			return http.StatusOK, o, err
		})))
	mux.Handle(RouteSubscriptions, require(auth.Route(read, log,
		func(ctx context.Context, p auth.Principal, _ *http.Request) (int, any, error) {
			list, err := svc.Subscriptions(ctx, p.UserID)
			return http.StatusOK, Subscriptions{Subscriptions: list}, err
		})))
	return &Function{mux: mux}
}

// Subscriptions is the answer of RouteSubscriptions.
type Subscriptions struct {
	Subscriptions []billing.Subscription `json:"subscriptions"`
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }
