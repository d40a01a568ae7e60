// Package authlogin is the auth-login function: POST /api/v1/auth/login exchanges
// a username or email and a password for an access and a refresh token.
package authlogin

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/session"
	"github.com/cloudphone/cloudphone/shared/httpjson"
)

// Name is the function's name in the catalog.
const Name = "auth-login"

// Route is the function's one route.
const Route = "POST /api/v1/auth/login"

// Function answers Route with 200 and the tokens (Cache-Control: no-store), or
// 401 with one generic message for every refused login. Safe for concurrent use.
type Function struct {
	svc *user.Service
	log *slog.Logger
	mux *http.ServeMux
}

// New returns the function over svc. It panics when svc or log is nil.
func New(svc *user.Service, log *slog.Logger) *Function {
	if svc == nil || log == nil {
		panic("login: New needs a user.Service and a logger")
	}
	f := &Function{svc: svc, log: log, mux: httpjson.NewMux(log)}
	f.mux.HandleFunc(Route, f.serve)
	return f
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

func (f *Function) serve(w http.ResponseWriter, r *http.Request) {
	var req user.LoginRequest
	err := httpjson.Decode(r, &req)
	var resp user.Tokens
	if err == nil {
		resp, err = f.handle(r.Context(), req)
	}
	session.WriteTokens(w, r, f.log, resp, err, f.svc.RefreshTokenTTL())
}

func (f *Function) handle(ctx context.Context, req user.LoginRequest) (user.Tokens, error) {
	return f.svc.Login(ctx, req)
}
