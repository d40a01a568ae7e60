// Package userquotainternal is the user-quota-internal function: the quota
// service other contexts call with a service token. Device creation
// reserves and deletion releases a device's quota; device start and stop
// count running devices; billing reads a user's quota.
package userquotainternal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/httpjson"
	"github.com/cloudphone/cloudphone/shared/servicetoken"
)

// Name is the function's name in the catalog.
const Name = "user-quota-internal"

// The function's routes.
const (
	RouteReserve = "POST /internal/v1/quotas/{user_id}/reserve"
	RouteRelease = "POST /internal/v1/quotas/{user_id}/release"
	RouteStart   = "POST /internal/v1/quotas/{user_id}/start"
	RouteStop    = "POST /internal/v1/quotas/{user_id}/stop"
	RouteGet     = "GET /internal/v1/quotas/{user_id}"
)

// Routes lists every route, for the catalog.
var Routes = []string{RouteReserve, RouteRelease, RouteStart, RouteStop, RouteGet}

// Allowed is who may call each route: the device context everything, billing
// only the read.
var Allowed = map[string][]string{
	RouteReserve: {servicetoken.ContextDevice},
	RouteRelease: {servicetoken.ContextDevice},
	RouteStart:   {servicetoken.ContextDevice},
	RouteStop:    {servicetoken.ContextDevice},
	RouteGet:     {servicetoken.ContextDevice, servicetoken.ContextBilling},
}

// Config is the function's own configuration: the key that checks service
// tokens.
type Config struct {
	// ServiceTokenPublicKey is the standard base64 of the Ed25519 public key
	// of service tokens.
	ServiceTokenPublicKey string `env:"CLOUDPHONE_SERVICE_TOKEN_PUBLIC_KEY" secret:"service-token-public-key"`
}

// Verifier returns the service-token verifier cfg describes, or an error
// when the key is missing or malformed.
func (cfg Config) Verifier() (*servicetoken.Verifier, error) {
	if cfg.ServiceTokenPublicKey == "" {
		return nil, errors.New("quotainternal: CLOUDPHONE_SERVICE_TOKEN_PUBLIC_KEY (secret service-token-public-key) is not set")
	}
	pub, err := servicetoken.ParsePublicKey(cfg.ServiceTokenPublicKey)
	if err != nil {
		return nil, fmt.Errorf("quotainternal: CLOUDPHONE_SERVICE_TOKEN_PUBLIC_KEY: %w", err)
	}
	return servicetoken.NewVerifier(pub, servicetoken.VerifierOptions{}), nil
}

// Function answers Routes for callers with a service token for the user
// context from a context Allowed on the route: 401 without a valid service
// token (user tokens included), 403 for another caller. Reserve answers 200
// with the reservation, 403 quota_exceeded naming the limit, 409 when the
// device holds other amounts; release, start and stop answer 200 with the
// device's state; an unknown user is 404. Safe for concurrent use.
type Function struct {
	svc     *user.Service
	log     *slog.Logger
	handler http.Handler
}

// New returns the function over svc, checking service tokens with v. It
// panics when an argument is nil.
func New(svc *user.Service, v *servicetoken.Verifier, log *slog.Logger) *Function {
	if svc == nil || v == nil || log == nil {
		panic("quotainternal: New needs a user.Service, a servicetoken.Verifier and a logger")
	}
	f := &Function{svc: svc, log: log}
	mux := httpjson.NewMux(log)
	mux.Handle(RouteReserve, serveBody(f, svc.Reserve))
	mux.Handle(RouteRelease, serveBody(f, svc.Release))
	mux.Handle(RouteStart, serveBody(f, svc.Start))
	mux.Handle(RouteStop, serveBody(f, svc.Stop))
	mux.HandleFunc(RouteGet, func(w http.ResponseWriter, r *http.Request) {
		q, err := svc.Quota(r.Context(), r.PathValue("user_id"))
		f.write(w, r, q, err)
	})
	f.handler = servicetoken.Guard(v, servicetoken.ContextUser, servicetoken.Routes(Allowed), log)(mux)
	return f
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.handler.ServeHTTP(w, r) }

// serveBody decodes a Req, calls handle with the path's user id and writes
// the answer.
func serveBody[Req, Resp any](f *Function, handle func(ctx context.Context, userID string, req Req) (Resp, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req Req
		var resp Resp
		err := httpjson.Decode(r, &req)
		if err == nil {
			resp, err = handle(r.Context(), r.PathValue("user_id"), req)
		}
		f.write(w, r, resp, err)
	})
}

func (f *Function) write(w http.ResponseWriter, r *http.Request, resp any, err error) {
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		apierr.Write(w, r, f.log, err)
		return
	}
	httpjson.Write(w, http.StatusOK, resp)
}
