// Package adminnodes is the admin-nodes function: the device hosts' capacity,
// load, health and drain for administrators (GET and POST
// /api/v1/admin/nodes, PUT and DELETE /api/v1/admin/nodes/{id}).
package adminnodes

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/httpjson"
)

// Name is the function's name in the catalog.
const Name = "admin-nodes"

// The function's routes.
const (
	RouteList   = "GET /api/v1/admin/nodes"
	RouteAdd    = "POST /api/v1/admin/nodes"
	RouteUpdate = "PUT /api/v1/admin/nodes/{id}"
	RouteDelete = "DELETE /api/v1/admin/nodes/{id}"
)

// Routes lists every route, for the catalog.
var Routes = []string{RouteList, RouteAdd, RouteUpdate, RouteDelete}

// Function answers Routes for a bearer of a valid access token with the admin
// role (401 without a valid token, 403 otherwise). RouteList answers
// {"nodes": [...]}; RouteAdd takes device.NodeRegistration, checks the
// node's engine and answers the node (201; 422 when the engine check fails,
// its message starting with what failed, see deviceruntime.CheckEngine; 409
// for a name or engine taken); RouteUpdate takes device.NodeUpdate and
// answers the node; RouteDelete answers 204 (409 while the node holds
// devices). Both answer 404 for an unknown node. Safe for concurrent use.
type Function struct {
	svc   *device.Service
	check device.EngineCheck
	log   *slog.Logger
	mux   *http.ServeMux
}

// New returns the function over svc, checking tokens with v and the engines
// of new nodes with check. It panics when an argument is nil.
func New(svc *device.Service, v *auth.Verifier, check device.EngineCheck, log *slog.Logger) *Function {
	if svc == nil || v == nil || check == nil || log == nil {
		panic("adminnodes: New needs a device.Service, an auth.Verifier, an engine check and a logger")
	}
	f := &Function{svc: svc, check: check, log: log, mux: httpjson.NewMux(log)}
	require := auth.Require(v, log)
	f.mux.Handle(RouteList, require(f.serve(http.StatusOK, f.list)))
	f.mux.Handle(RouteAdd, require(f.serve(http.StatusCreated, f.add)))
	f.mux.Handle(RouteUpdate, require(f.serve(http.StatusOK, f.update)))
	f.mux.Handle(RouteDelete, require(f.serve(http.StatusNoContent, f.remove)))
	return f
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

// serve runs handle for an administrator.
func (f *Function) serve(status int, handle func(ctx context.Context, r *http.Request) (any, error)) http.Handler {
	return auth.Route(auth.Access{Role: auth.RoleAdmin}, f.log, func(ctx context.Context, _ auth.Principal, r *http.Request) (int, any, error) {
		resp, err := handle(ctx, r)
		return status, resp, err
	})
}

// List is the answer of RouteList.
type List struct {
	Nodes []device.Node `json:"nodes"`
}

func (f *Function) list(ctx context.Context, _ *http.Request) (any, error) {
	ns, err := f.svc.Nodes(ctx)
	if ns == nil {
		ns = []device.Node{}
	}
	return List{Nodes: ns}, err
}

func (f *Function) update(ctx context.Context, r *http.Request) (any, error) {
	var req device.NodeUpdate
	if err := httpjson.Decode(r, &req); err != nil {
		return nil, err
	}
	return f.svc.UpdateNode(ctx, r.PathValue("id"), req)
}

func (f *Function) add(ctx context.Context, r *http.Request) (any, error) {
	var req device.NodeRegistration
	if err := httpjson.Decode(r, &req); err != nil {
		return nil, err
	}
	return f.svc.AddNode(ctx, req, f.check)
}

func (f *Function) remove(ctx context.Context, r *http.Request) (any, error) {
	return nil, f.svc.DeleteNode(ctx, r.PathValue("id"))
}
