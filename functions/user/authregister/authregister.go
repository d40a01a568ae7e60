// Package authregister is the auth-register function: POST /api/v1/auth/register
// creates an account with the free-tier quota and emits
// cloudphone.user.registered.
package authregister

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/httpjson"
)

// Name is the function's name in the catalog.
const Name = "auth-register"

// Route is the function's one route.
const Route = "POST /api/v1/auth/register"

// Function answers Route with 201 and the new user's profile, 400 for a body
// that breaks a rule, 409 when the username or email is taken, 413/415 for
// oversized or non-JSON bodies. Safe for concurrent use.
type Function struct {
	svc *user.Service
	log *slog.Logger
	mux *http.ServeMux
}

// New returns the function over svc. It panics when svc or log is nil.
func New(svc *user.Service, log *slog.Logger) *Function {
	if svc == nil || log == nil {
		panic("register: New needs a user.Service and a logger")
	}
	f := &Function{svc: svc, log: log, mux: httpjson.NewMux(log)}
	f.mux.HandleFunc(Route, f.serve)
	return f
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

func (f *Function) serve(w http.ResponseWriter, r *http.Request) {
	var req user.RegisterRequest
	err := httpjson.Decode(r, &req)
	var resp user.Profile
	if err == nil {
		resp, err = f.handle(r.Context(), req)
	}
	if err != nil {
		apierr.Write(w, r, f.log, err)
		return
	}
	w.Header().Set("Location", "/api/v1/users/me")
	httpjson.Write(w, http.StatusCreated, resp)
}

func (f *Function) handle(ctx context.Context, req user.RegisterRequest) (user.Profile, error) {
	u, err := f.svc.Register(ctx, req)
	if err != nil {
		return user.Profile{}, err
	}
	return user.Profile{
		ID: u.ID, Username: u.Username, Email: u.Email, Roles: u.Roles, Permissions: user.Permissions(u.Roles),
		Status: u.Status, CreatedAt: u.CreatedAt,
	}, nil
}
