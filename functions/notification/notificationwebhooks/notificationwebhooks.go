// Package notificationwebhooks is the notification-webhooks function: a user's outgoing
// webhook endpoints and their deliveries.
package notificationwebhooks

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/httpjson"
)

// Name is the function's name in the catalog.
const Name = "notification-webhooks"

// The function's routes.
const (
	RouteList       = "GET /api/v1/webhooks"
	RouteCreate     = "POST /api/v1/webhooks"
	RouteGet        = "GET /api/v1/webhooks/{id}"
	RouteUpdate     = "PUT /api/v1/webhooks/{id}"
	RouteDelete     = "DELETE /api/v1/webhooks/{id}"
	RouteDeliveries = "GET /api/v1/webhooks/{id}/deliveries"
	RouteResend     = "POST /api/v1/webhooks/{id}/deliveries/{delivery}/resend"
)

// Routes lists every route, for the catalog.
var Routes = []string{RouteList, RouteCreate, RouteGet, RouteUpdate, RouteDelete, RouteDeliveries, RouteResend}

// Function answers the routes for the caller's own endpoints
// (notification:read; another user's endpoint is 404): RouteCreate
// ({url, event_types, active?} → 201 with the secret, shown this once; a URL
// resolving to a loopback, private, link-local or metadata address is 400),
// RouteList ({items}), RouteGet, RouteUpdate (the fields given), RouteDelete
// (204), RouteDeliveries (?limit, ?cursor: newest first, with attempts) and
// RouteResend (202, the delivery queued again). Safe for concurrent use.
type Function struct{ mux *http.ServeMux }

// New returns the function over svc, checking tokens with v. It panics when
// an argument is nil.
func New(svc *notification.Service, v *auth.Verifier, log *slog.Logger) *Function {
	if svc == nil || v == nil || log == nil {
		panic("notificationwebhooks: New needs a notification.Service, an auth.Verifier and a logger")
	}
	mux := httpjson.NewMux(log)
	require := auth.Require(v, log)
	handle := func(route string, h auth.HandlerFunc) {
		mux.Handle(route, require(auth.Route(notification.User, log, h)))
	}
	handle(RouteList, func(ctx context.Context, p auth.Principal, _ *http.Request) (int, any, error) {
		items, err := svc.Webhooks(ctx, p.UserID)
		return http.StatusOK, List{Items: items}, err
	})
	handle(RouteCreate, func(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
		var req notification.WebhookRequest
		if err := httpjson.Decode(r, &req); err != nil {
			return 0, nil, err
		}
		w, err := svc.CreateWebhook(ctx, p.UserID, req)
		return http.StatusCreated, w, err
	})
	handle(RouteGet, func(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
		w, err := svc.WebhookOf(ctx, p.UserID, r.PathValue("id"))
		return http.StatusOK, w, err
	})
	handle(RouteUpdate, func(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
		var req notification.WebhookRequest
		if err := httpjson.Decode(r, &req); err != nil {
			return 0, nil, err
		}
		w, err := svc.UpdateWebhook(ctx, p.UserID, r.PathValue("id"), req)
		return http.StatusOK, w, err
	})
	handle(RouteDelete, func(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
		return http.StatusNoContent, nil, svc.DeleteWebhook(ctx, p.UserID, r.PathValue("id"))
	})
	handle(RouteDeliveries, func(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
		limit, err := httpjson.Limit(r, notification.MaxPageSize)
		if err != nil {
			return 0, nil, err
		}
		page, err := svc.Deliveries(ctx, p.UserID, r.PathValue("id"), limit, r.URL.Query().Get("cursor"))
		return http.StatusOK, page, err
	})
	handle(RouteResend, func(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
		d, err := svc.Resend(ctx, p.UserID, r.PathValue("id"), r.PathValue("delivery"))
		return http.StatusAccepted, d, err
	})
	return &Function{mux: mux}
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

// List is the answer of RouteList.
type List struct {
	Items []notification.Webhook `json:"items"`
}
