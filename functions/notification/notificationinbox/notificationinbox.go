// Package notificationinbox is the notification-inbox function: a user's own
// in-app notifications.
package notificationinbox

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/httpjson"
)

// Name is the function's name in the catalog.
const Name = "notification-inbox"

// The function's routes.
const (
	RouteList    = "GET /api/v1/notifications"
	RouteRead    = "POST /api/v1/notifications/{id}/read"
	RouteReadAll = "POST /api/v1/notifications/read-all"
)

// Routes lists every route, for the catalog.
var Routes = []string{RouteList, RouteRead, RouteReadAll}

// Function answers RouteList (?limit 1–100, ?cursor, ?unread=true: a page
// newest first with the unread count), RouteRead (the notification, marked
// read; another user's is 404) and RouteReadAll ({updated}), for the caller's
// own notifications (notification:read). Safe for concurrent use.
type Function struct{ mux *http.ServeMux }

// New returns the function over svc, checking tokens with v. It panics when
// an argument is nil.
func New(svc *notification.Service, v *auth.Verifier, log *slog.Logger) *Function {
	if svc == nil || v == nil || log == nil {
		panic("notificationinbox: New needs a notification.Service, an auth.Verifier and a logger")
	}
	mux := httpjson.NewMux(log)
	require := auth.Require(v, log)
	mux.Handle(RouteList, require(auth.Route(notification.User, log,
		func(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
			limit, err := httpjson.Limit(r, notification.MaxPageSize)
			if err != nil {
				return 0, nil, err
			}
			q := notification.ListQuery{Limit: limit, Cursor: r.URL.Query().Get("cursor")}
			if s := r.URL.Query().Get("unread"); s != "" {
				if q.UnreadOnly, err = strconv.ParseBool(s); err != nil {
					return 0, nil, apierr.New(apierr.Invalid, "unread: must be true or false")
				}
			}
			page, err := svc.List(ctx, p.UserID, q)
			return http.StatusOK, page, err
		})))
	mux.Handle(RouteRead, require(auth.Route(notification.User, log,
		func(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
			n, err := svc.MarkRead(ctx, p.UserID, r.PathValue("id"))
			return http.StatusOK, n, err
		})))
	mux.Handle(RouteReadAll, require(auth.Route(notification.User, log,
		func(ctx context.Context, p auth.Principal, _ *http.Request) (int, any, error) {
			n, err := svc.MarkAllRead(ctx, p.UserID)
			return http.StatusOK, n, err
		})))
	return &Function{mux: mux}
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }
