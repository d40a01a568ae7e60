// Package adminnodes is the admin-nodes function: the device hosts' capacity,
// load and drain for administrators (GET /api/v1/admin/nodes, PUT
// /api/v1/admin/nodes/{id}).
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
	RouteUpdate = "PUT /api/v1/admin/nodes/{id}"
)

// Routes lists every route, for the catalog.
var Routes = []string{RouteList, RouteUpdate}

// Function answers Routes for a bearer of a valid access token with the admin
// role (401 without a valid token, 403 otherwise). RouteList answers
// {"nodes": [...]}; RouteUpdate takes device.NodeUpdate and answers the node,
// 404 for an unknown node. Safe for concurrent use.
type Function struct {
	svc *device.Service
	log *slog.Logger
	mux *http.ServeMux
}

// New returns the function over svc, checking tokens with v. It panics when
// an argument is nil.
func New(svc *device.Service, v *auth.Verifier, log *slog.Logger) *Function {
	if svc == nil || v == nil || log == nil {
		panic("adminnodes: New needs a device.Service, an auth.Verifier and a logger")
	}
	f := &Function{svc: svc, log: log, mux: httpjson.NewMux(log)}
	require := auth.Require(v, log)
	f.mux.Handle(RouteList, require(f.serve(f.list)))
	f.mux.Handle(RouteUpdate, require(f.serve(f.update)))
	return f
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

// serve runs handle for an administrator.
func (f *Function) serve(handle func(ctx context.Context, r *http.Request) (any, error)) http.Handler {
	return auth.Route(auth.Access{Role: auth.RoleAdmin}, f.log, func(ctx context.Context, _ auth.Principal, r *http.Request) (int, any, error) {
		resp, err := handle(ctx, r)
		return http.StatusOK, resp, err
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
