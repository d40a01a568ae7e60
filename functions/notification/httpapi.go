package notification

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/httpjson"
)

// Access is who may call a route.
type Access struct {
	Admin      bool   // the admin role is required
	Permission string // required permission ("" = none)
}

// User is the access of a user's own notification routes.
var User = Access{Permission: PermRead}

// HandlerFunc handles one request of principal p and returns the status and
// body to write, or an error.
type HandlerFunc func(ctx context.Context, p auth.Principal, r *http.Request) (status int, body any, err error)

// Check returns the caller of r when it may use a route of access a: apierr
// Unauthorized without a verified token (auth.Require checks it in front),
// Forbidden without the role or permission.
func Check(a Access, r *http.Request) (auth.Principal, error) {
	p, ok := auth.PrincipalFrom(r.Context())
	switch {
	case !ok:
		return p, apierr.New(apierr.Unauthorized, "invalid or expired token")
	case a.Admin && !p.HasRole(RoleAdmin), a.Permission != "" && !p.HasPermission(a.Permission):
		return p, apierr.New(apierr.Forbidden, "not allowed")
	}
	return p, nil
}

// Route turns h into an http.Handler that checks the caller against a and
// writes the answer or the error in one place, never cached.
func Route(a Access, log *slog.Logger, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		p, err := Check(a, r)
		var (
			status int
			body   any
		)
		if err == nil {
			status, body, err = h(r.Context(), p, r)
		}
		if err != nil {
			apierr.Write(w, r, log, err)
			return
		}
		httpjson.Write(w, status, body)
	})
}
