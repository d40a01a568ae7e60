// Package adminusers is the admin-users function: administrators list users
// and change their roles and status.
package adminusers

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/httpjson"
)

// Name is the function's name in the catalog.
const Name = "admin-users"

// The function's routes.
const (
	RouteList   = "GET /api/v1/admin/users"
	RouteRoles  = "PUT /api/v1/admin/users/{id}/roles"
	RouteStatus = "PUT /api/v1/admin/users/{id}/status"
)

// Routes lists every route, for the catalog.
var Routes = []string{RouteList, RouteRoles, RouteStatus}

// Permission is what a caller needs besides the admin role.
const Permission = "admin:users"

// Function answers Routes for a bearer of a valid access token with the admin
// role and the admin:users permission (401 without a valid token, 403
// otherwise). RouteList takes ?limit (1–100, default 20), ?cursor (from the
// previous page's next_cursor) and ?q (username or email prefix). An unknown
// user id is 404; taking one's own admin role or disabling oneself is 409.
// Safe for concurrent use.
type Function struct {
	svc *user.Service
	log *slog.Logger
	mux *http.ServeMux
}

// New returns the function over svc, checking tokens with v. It panics when
// an argument is nil.
func New(svc *user.Service, v *auth.Verifier, log *slog.Logger) *Function {
	if svc == nil || v == nil || log == nil {
		panic("adminusers: New needs a user.Service, an auth.Verifier and a logger")
	}
	f := &Function{svc: svc, log: log, mux: httpjson.NewMux(log)}
	require := auth.Require(v, log)
	f.mux.Handle(RouteList, require(f.serve(f.list)))
	f.mux.Handle(RouteRoles, require(f.serve(f.roles)))
	f.mux.Handle(RouteStatus, require(f.serve(f.status)))
	return f
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

// serve runs handle for an administrator holding Permission.
func (f *Function) serve(handle func(ctx context.Context, p auth.Principal, r *http.Request) (any, error)) http.Handler {
	return auth.Route(auth.Access{Role: auth.RoleAdmin, Permission: Permission}, f.log, func(ctx context.Context, p auth.Principal, r *http.Request) (int, any, error) {
		resp, err := handle(ctx, p, r)
		return http.StatusOK, resp, err
	})
}

func (f *Function) list(ctx context.Context, _ auth.Principal, r *http.Request) (any, error) {
	q := r.URL.Query()
	limit, err := httpjson.Limit(r, user.ListMaxLimit)
	if err != nil {
		return nil, err
	}
	query := user.ListUsersQuery{Cursor: q.Get("cursor"), Q: q.Get("q"), Limit: limit}
	return f.svc.ListUsers(ctx, query)
}

func (f *Function) roles(ctx context.Context, p auth.Principal, r *http.Request) (any, error) {
	var req user.RolesRequest
	if err := httpjson.Decode(r, &req); err != nil {
		return nil, err
	}
	return f.svc.SetRoles(ctx, p, r.PathValue("id"), req)
}

func (f *Function) status(ctx context.Context, p auth.Principal, r *http.Request) (any, error) {
	var req user.StatusRequest
	if err := httpjson.Decode(r, &req); err != nil {
		return nil, err
	}
	return f.svc.SetStatus(ctx, p, r.PathValue("id"), req)
}
