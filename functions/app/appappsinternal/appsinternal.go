// Package appappsinternal is the app-apps-internal function: the device context,
// with a service token, asks for what it needs to install a user's app on a
// phone (a presigned download URL, the digest and the size), so that it
// never reads the app database.
package appappsinternal

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/cloudphone/cloudphone/functions/app"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/httpjson"
	"github.com/cloudphone/cloudphone/shared/servicetoken"
)

// Name is the function's name in the catalog.
const Name = "app-apps-internal"

// RouteDownload answers the download of one user's app.
const RouteDownload = "GET /internal/v1/users/{user_id}/apps/{app_id}/download"

// Routes lists every route, for the catalog.
var Routes = []string{RouteDownload}

// Allowed is who may call each route: the device context.
var Allowed = map[string][]string{RouteDownload: {servicetoken.ContextDevice}}

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
		return nil, errors.New("appappsinternal: CLOUDPHONE_SERVICE_TOKEN_PUBLIC_KEY (secret service-token-public-key) is not set")
	}
	pub, err := servicetoken.ParsePublicKey(cfg.ServiceTokenPublicKey)
	if err != nil {
		return nil, fmt.Errorf("appappsinternal: CLOUDPHONE_SERVICE_TOKEN_PUBLIC_KEY: %w", err)
	}
	return servicetoken.NewVerifier(pub, servicetoken.VerifierOptions{}), nil
}

// Function answers Routes for callers with a service token for the app
// context from the device context: 401 without a valid service token, 403
// for another caller. RouteDownload answers 200 with an app.Download; an app
// the user does not own, or none, is 404. Safe for concurrent use.
type Function struct{ handler http.Handler }

// New returns the function over svc, checking service tokens with v. It
// panics when an argument is nil.
func New(svc *app.Service, v *servicetoken.Verifier, log *slog.Logger) *Function {
	if svc == nil || v == nil || log == nil {
		panic("appappsinternal: New needs an app.Service, a servicetoken.Verifier and a logger")
	}
	mux := httpjson.NewMux(log)
	mux.HandleFunc(RouteDownload, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		d, err := svc.Download(r.Context(), r.PathValue("user_id"), r.PathValue("app_id"))
		if err != nil {
			apierr.Write(w, r, log, err)
			return
		}
		httpjson.Write(w, http.StatusOK, d)
	})
	return &Function{handler: servicetoken.Guard(v, servicetoken.ContextApp, servicetoken.Routes(Allowed), log)(mux)}
}

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.handler.ServeHTTP(w, r) }
