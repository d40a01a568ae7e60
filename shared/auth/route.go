package auth

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/httpjson"
)

// RoleAdmin is the role of the platform's administrators.
const RoleAdmin = "admin"

// Access is who may call a route.
type Access struct {
	Public     bool   // no token needed
	Role       string // the role required ("" = none)
	Permission string // the permission required ("" = none)
}

// HandlerFunc handles one request for principal p (zero for a public route)
// and returns the status and body to write (a nil body writes the status
// alone), or an error.
type HandlerFunc func(ctx context.Context, p Principal, r *http.Request) (status int, body any, err error)

// Route is the one adapter of the platform's JSON routes: it checks the
// caller against a (401 unauthorized without a principal, 403 forbidden
// without the role or permission; the token itself is checked by Require in
// front of it), runs h, and writes its answer or its error (apierr.Write) in
// one place. Every answer of a route that is not public carries
// Cache-Control: no-store.
func Route(a Access, log *slog.Logger, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := Allow(a, r)
		var (
			status int
			body   any
		)
		if err == nil {
			status, body, err = h(r.Context(), p, r)
		}
		if !a.Public {
			w.Header().Set("Cache-Control", "no-store")
		}
		if err != nil {
			apierr.Write(w, r, log, err)
			return
		}
		httpjson.Write(w, status, body)
	})
}

// Allow returns the caller of r when it may use a route of access a (the
// zero Principal for a public route): apierr Unauthorized without a verified
// principal (Require checks the token in front), Forbidden without the role
// or permission. Route calls it; a handler that does not answer JSON (a
// stream, say) calls it itself.
func Allow(a Access, r *http.Request) (Principal, error) {
	p, ok := PrincipalFrom(r.Context())
	switch {
	case a.Public:
		return p, nil
	case !ok:
		return p, apierr.New(apierr.Unauthorized, "invalid or expired token")
	case a.Role != "" && !p.HasRole(a.Role), a.Permission != "" && !p.HasPermission(a.Permission):
		return p, apierr.New(apierr.Forbidden, "not allowed")
	}
	return p, nil
}
