// Package devices is the devices function: the public device routes for the
// signed-in user (create, list, read, start, stop, restart,
// delete, connection, and the apps installed on a device).
package devices

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/httpjson"
)

// Name is the function's name in the catalog.
const Name = "devices"

// The function's routes.
const (
	RouteCreate     = "POST /api/v1/devices"
	RouteList       = "GET /api/v1/devices"
	RouteGet        = "GET /api/v1/devices/{id}"
	RouteDelete     = "DELETE /api/v1/devices/{id}"
	RouteStart      = "POST /api/v1/devices/{id}/start"
	RouteStop       = "POST /api/v1/devices/{id}/stop"
	RouteRestart    = "POST /api/v1/devices/{id}/restart"
	RouteConnection = "GET /api/v1/devices/{id}/connection"
	RouteApps       = "GET /api/v1/devices/{id}/apps"
	RouteInstall    = "POST /api/v1/devices/{id}/apps"
	RouteUninstall  = "DELETE /api/v1/devices/{id}/apps/{package}"
)

// Routes lists every route, for the catalog.
var Routes = []string{RouteCreate, RouteList, RouteGet, RouteDelete, RouteStart, RouteStop, RouteRestart, RouteConnection,
	RouteApps, RouteInstall, RouteUninstall}

// Function answers Routes for the bearer of a valid access token (401
// otherwise). Create, start, stop, restart and delete answer 202 with the
// device (the work completes when device-runtime reports); list answers
// {"devices": [...]}; get and connection 200. Install and uninstall of an
// app answer 202 with the installation (done when device-runtime reports),
// the apps route 200 {"apps": [...]}; another user's app is 404 like another
// user's device. Another user's device is 404 on every route (an admin may
// read any); a request that does not fit the
// device's state is 409; a refusal for lack of quota is 403 quota_exceeded;
// no node with room or no free ADB port is 503 unavailable. Safe for
// concurrent use.
type Function struct {
	svc *device.Service
	log *slog.Logger
	mux *http.ServeMux
}

// New returns the function over svc, checking tokens with v. It panics when
// an argument is nil.
func New(svc *device.Service, v *auth.Verifier, log *slog.Logger) *Function {
	if svc == nil || v == nil || log == nil {
		panic("devices: New needs a device.Service, an auth.Verifier and a logger")
	}
	f := &Function{svc: svc, log: log, mux: httpjson.NewMux(log)}
	require := auth.Require(v, log)
	f.mux.Handle(RouteCreate, require(f.serve(http.StatusAccepted, f.create)))
	f.mux.Handle(RouteList, require(f.serve(http.StatusOK, f.list)))
	f.mux.Handle(RouteGet, require(f.serve(http.StatusOK, byID(svc.Get))))
	f.mux.Handle(RouteDelete, require(f.serve(http.StatusAccepted, byID(svc.Delete))))
	f.mux.Handle(RouteStart, require(f.serve(http.StatusAccepted, byID(svc.Start))))
	f.mux.Handle(RouteStop, require(f.serve(http.StatusAccepted, byID(svc.Stop))))
	f.mux.Handle(RouteRestart, require(f.serve(http.StatusAccepted, byID(svc.Restart))))
	f.mux.Handle(RouteConnection, require(f.serve(http.StatusOK, f.connection)))
	f.mux.Handle(RouteApps, require(f.serve(http.StatusOK, byID(svc.ListApps))))
	f.mux.Handle(RouteInstall, require(f.serve(http.StatusAccepted, f.install)))
	f.mux.Handle(RouteUninstall, require(f.serve(http.StatusAccepted, f.uninstall)))
	return f
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

type handler func(ctx context.Context, p auth.Principal, r *http.Request) (any, error)

// serve runs handle for the signed-in caller and answers with status.
func (f *Function) serve(status int, handle handler) http.Handler {
	return auth.Route(auth.Access{}, f.log, func(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
		resp, err := handle(ctx, p, r)
		return status, resp, err
	})
}

// byID adapts a use case on the path's device id.
func byID[T any](fn func(ctx context.Context, p auth.Principal, id string) (T, error)) handler {
	return func(ctx context.Context, p auth.Principal, r *http.Request) (any, error) {
		return fn(ctx, p, r.PathValue("id"))
	}
}

func (f *Function) create(ctx context.Context, p auth.Principal, r *http.Request) (any, error) {
	var req device.CreateRequest
	if err := httpjson.Decode(r, &req); err != nil {
		return nil, err
	}
	return f.svc.Create(ctx, p, req)
}

// List is the answer of RouteList.
type List struct {
	Devices []device.Device `json:"devices"`
}

func (f *Function) list(ctx context.Context, p auth.Principal, _ *http.Request) (any, error) {
	ds, err := f.svc.List(ctx, p)
	return List{Devices: ds}, err
}

// connection answers a fresh ticket and the gateway URL, under the host the
// request came to unless the device context has a gateway URL configured.
func (f *Function) connection(ctx context.Context, p auth.Principal, r *http.Request) (any, error) {
	scheme := "ws"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "wss"
	}
	return f.svc.Connect(ctx, p, r.PathValue("id"), scheme+"://"+r.Host)
}

func (f *Function) install(ctx context.Context, p auth.Principal, r *http.Request) (any, error) {
	var req device.InstallRequest
	if err := httpjson.Decode(r, &req); err != nil {
		return nil, err
	}
	return f.svc.InstallApp(ctx, p, r.PathValue("id"), req)
}

func (f *Function) uninstall(ctx context.Context, p auth.Principal, r *http.Request) (any, error) {
	return f.svc.UninstallApp(ctx, p, r.PathValue("id"), r.PathValue("package"))
}
