// Package billingfundsinternal is the billing-funds-internal function: the
// device context asks it, with a service token, whether a user's balance
// covers an hour of a phone before it starts one.
package billingfundsinternal

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/httpjson"
	"github.com/cloudphone/cloudphone/shared/servicetoken"
)

// Name is the function's name in the catalog.
const Name = "billing-funds-internal"

// RouteCheck answers 200 with the billing.FundsCheck when the balance covers
// an hour of the phone, 409 insufficient_funds when it does not.
const RouteCheck = "POST /internal/v1/funds/{user_id}/check"

// Routes lists every route, for the catalog.
var Routes = []string{RouteCheck}

// Allowed is who may call each route: the device context.
var Allowed = map[string][]string{RouteCheck: {servicetoken.ContextDevice}}

// CheckRequest is the body of RouteCheck: the phone's size.
type CheckRequest struct {
	CPUCores int `json:"cpu_cores"`
	MemoryMB int `json:"memory_mb"`
}

// Config is the function's own configuration: the key that checks service
// tokens.
type Config struct {
	ServiceTokenPublicKey string `env:"CLOUDPHONE_SERVICE_TOKEN_PUBLIC_KEY" secret:"service-token-public-key"`
}

// Verifier returns the service-token verifier cfg describes, or an error
// when the key is missing or malformed.
func (cfg Config) Verifier() (*servicetoken.Verifier, error) {
	if cfg.ServiceTokenPublicKey == "" {
		return nil, errors.New("billingfundsinternal: CLOUDPHONE_SERVICE_TOKEN_PUBLIC_KEY (secret service-token-public-key) is not set")
	}
	pub, err := servicetoken.ParsePublicKey(cfg.ServiceTokenPublicKey)
	if err != nil {
		return nil, fmt.Errorf("billingfundsinternal: CLOUDPHONE_SERVICE_TOKEN_PUBLIC_KEY: %w", err)
	}
	return servicetoken.NewVerifier(pub, servicetoken.VerifierOptions{}), nil
}

// Function answers RouteCheck for callers with a service token for the
// billing context from a context Allowed on it: 401 without a valid service
// token, 403 for another caller. Safe for concurrent use.
type Function struct {
	handler http.Handler
}

// New returns the function over svc, checking service tokens with v. It
// panics when an argument is nil.
func New(svc *billing.Service, v *servicetoken.Verifier, log *slog.Logger) *Function {
	if svc == nil || v == nil || log == nil {
		panic("billingfundsinternal: New needs a billing.Service, a servicetoken.Verifier and a logger")
	}
	mux := httpjson.NewMux(log)
	mux.HandleFunc(RouteCheck, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		var req CheckRequest
		err := httpjson.Decode(r, &req)
		var fc billing.FundsCheck
		if err == nil {
			fc, err = svc.CoverHour(r.Context(), r.PathValue("user_id"), req.CPUCores, req.MemoryMB)
		}
		if err != nil {
			apierr.Write(w, r, log, err)
			return
		}
		httpjson.Write(w, http.StatusOK, fc)
	})
	return &Function{handler: servicetoken.Guard(v, servicetoken.ContextBilling, servicetoken.Routes(Allowed), log)(mux)}
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.handler.ServeHTTP(w, r) }
