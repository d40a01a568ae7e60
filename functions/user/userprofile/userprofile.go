// Package userprofile is the user-profile function: GET /api/v1/users/me (the
// caller's profile, roles and permissions) and GET /api/v1/quotas/me (the
// caller's quota limits and usage).
package userprofile

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/httpjson"
)

// Name is the function's name in the catalog.
const Name = "user-profile"

// The function's routes.
const (
	RouteMe    = "GET /api/v1/users/me"
	RouteQuota = "GET /api/v1/quotas/me"
)

// Function answers RouteMe and RouteQuota for the bearer of a valid access
// token (401 otherwise). Safe for concurrent use.
type Function struct {
	svc *user.Service
	log *slog.Logger
	mux *http.ServeMux
}

// New returns the function over svc, checking tokens with v. It panics when
// an argument is nil.
func New(svc *user.Service, v *auth.Verifier, log *slog.Logger) *Function {
	if svc == nil || v == nil || log == nil {
		panic("profile: New needs a user.Service, an auth.Verifier and a logger")
	}
	f := &Function{svc: svc, log: log, mux: httpjson.NewMux(log)}
	require := auth.Require(v, log)
	f.mux.Handle(RouteMe, require(f.serve(f.me)))
	f.mux.Handle(RouteQuota, require(f.serve(f.quota)))
	return f
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

// serve runs handle for the signed-in caller and writes its answer; these
// routes have no body to decode.
func (f *Function) serve(handle func(ctx context.Context, p auth.Principal) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var resp any
		p, ok := auth.PrincipalFrom(r.Context())
		var err error = apierr.New(apierr.Unauthorized, "invalid or expired token")
		if ok {
			resp, err = handle(r.Context(), p)
		}
		w.Header().Set("Cache-Control", "private, no-store")
		if err != nil {
			apierr.Write(w, r, f.log, err)
			return
		}
		httpjson.Write(w, http.StatusOK, resp)
	})
}

func (f *Function) me(ctx context.Context, p auth.Principal) (any, error) {
	return f.svc.Profile(ctx, p.UserID)
}

func (f *Function) quota(ctx context.Context, p auth.Principal) (any, error) {
	return f.svc.Quota(ctx, p.UserID)
}
