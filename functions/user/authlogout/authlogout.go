// Package authlogout is the auth-logout function: POST /api/v1/auth/logout
// revokes the caller's access token and refresh family.
package authlogout

import (
	"log/slog"
	"net/http"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/session"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/httpjson"
)

// Name is the function's name in the catalog.
const Name = "auth-logout"

// Route is the function's one route.
const Route = "POST /api/v1/auth/logout"

// Function answers Route, which needs a bearer access token, with 204 after
// ending the caller's session (that token, the access tokens of its session,
// and the refresh family of the body's refresh_token), or every session of
// the user when the body says "everywhere": true or names no refresh token.
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
		panic("logout: New needs a user.Service, an auth.Verifier and a logger")
	}
	f := &Function{svc: svc, log: log, mux: httpjson.NewMux(log)}
	f.mux.Handle(Route, auth.Require(v, log)(http.HandlerFunc(f.serve)))
	return f
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

func (f *Function) serve(w http.ResponseWriter, r *http.Request) {
	var req user.LogoutRequest
	var err error
	if r.ContentLength != 0 {
		err = httpjson.Decode(r, &req)
	}
	if err == nil && req.RefreshToken == "" {
		req.RefreshToken = session.RefreshToken(r)
	}
	var p auth.Principal
	if err == nil {
		p, err = auth.Allow(auth.Access{}, r)
	}
	if err == nil {
		err = f.svc.Logout(r.Context(), p, req.RefreshToken, req.Everywhere)
	}
	if err != nil {
		apierr.Write(w, r, f.log, err)
		return
	}
	session.Clear(w)
	httpjson.Write(w, http.StatusNoContent, nil)
}
