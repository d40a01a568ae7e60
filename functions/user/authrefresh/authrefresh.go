// Package authrefresh is the auth-refresh function: POST /api/v1/auth/refresh
// rotates a refresh token; reusing a dead one revokes its whole family.
package authrefresh

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/session"
	"github.com/cloudphone/cloudphone/shared/httpjson"
)

// Name is the function's name in the catalog.
const Name = "auth-refresh"

// Route is the function's one route.
const Route = "POST /api/v1/auth/refresh"

// Function answers Route with 200 and new tokens (Cache-Control: no-store), or
// 401 for an unknown, expired, used or revoked refresh token. Safe for
// concurrent use.
type Function struct {
	svc *user.Service
	log *slog.Logger
	mux *http.ServeMux
}

// New returns the function over svc. It panics when svc or log is nil.
func New(svc *user.Service, log *slog.Logger) *Function {
	if svc == nil || log == nil {
		panic("refresh: New needs a user.Service and a logger")
	}
	f := &Function{svc: svc, log: log, mux: httpjson.NewMux(log)}
	f.mux.HandleFunc(Route, f.serve)
	return f
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

func (f *Function) serve(w http.ResponseWriter, r *http.Request) {
	var req user.RefreshRequest
	err := httpjson.Decode(r, &req)
	if err == nil && req.RefreshToken == "" {
		// A cookie session; the edge has checked its CSRF token.
		req.RefreshToken = session.RefreshToken(r)
	}
	var resp user.Tokens
	if err == nil {
		resp, err = f.handle(r.Context(), req)
	}
	session.WriteTokens(w, r, f.log, resp, err, f.svc.RefreshTokenTTL())
}

func (f *Function) handle(ctx context.Context, req user.RefreshRequest) (user.Tokens, error) {
	return f.svc.Refresh(ctx, req.RefreshToken)
}
