// Package notificationpreferences is the notification-preferences function: which
// channels (in-app, email, webhook) a user wants, per notification type.
package notificationpreferences

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/httpjson"
)

// Name is the function's name in the catalog.
const Name = "notification-preferences"

// The function's routes.
const (
	RouteGet = "GET /api/v1/notifications/preferences"
	RoutePut = "PUT /api/v1/notifications/preferences"
)

// Routes lists every route, for the catalog.
var Routes = []string{RouteGet, RoutePut}

// Function answers RouteGet (every type with its channels) and RoutePut
// ({preferences: [{type, in_app?, email?, webhook?}]}: the changed types,
// all or nothing; the answer is every type again) for the caller
// (notification:read). Safe for concurrent use.
type Function struct{ mux *http.ServeMux }

// New returns the function over svc, checking tokens with v. It panics when
// an argument is nil.
func New(svc *notification.Service, v *auth.Verifier, log *slog.Logger) *Function {
	if svc == nil || v == nil || log == nil {
		panic("notificationpreferences: New needs a notification.Service, an auth.Verifier and a logger")
	}
	mux := httpjson.NewMux(log)
	require := auth.Require(v, log)
	mux.Handle(RouteGet, require(auth.Route(notification.User, log,
		func(ctx context.Context, p auth.Principal, _ *http.Request) (int, any, error) {
			prefs, err := svc.PreferencesOf(ctx, p.UserID)
			return http.StatusOK, prefs, err
		})))
	mux.Handle(RoutePut, require(auth.Route(notification.User, log,
		func(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
			var req notification.PreferenceUpdate
			if err := httpjson.Decode(r, &req); err != nil {
				return 0, nil, err
			}
			prefs, err := svc.SetPreferences(ctx, p.UserID, req)
			return http.StatusOK, prefs, err
		})))
	return &Function{mux: mux}
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }
