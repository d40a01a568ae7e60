package billing

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
	Public     bool   // no token needed
	Admin      bool   // the admin role is required
	Permission string // required permission ("" = none)
}

// HandlerFunc handles one request for principal p (zero for a public route)
// and returns the status and body to write, or an error.
type HandlerFunc func(ctx context.Context, p auth.Principal, r *http.Request) (status int, body any, err error)

// Route turns h into an http.Handler that checks the caller against a
// (401 without a valid token, 403 without the role or permission; the token
// itself is checked by auth.Require in front of it) and writes the answer or
// the error in one place.
func Route(a Access, log *slog.Logger, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := auth.PrincipalFrom(r.Context())
		var (
			status int
			body   any
			err    error
		)
		switch {
		case a.Public:
			status, body, err = h(r.Context(), p, r)
		case !ok:
			err = apierr.New(apierr.Unauthorized, "invalid or expired token")
		case a.Admin && !p.HasRole(RoleAdmin), a.Permission != "" && !p.HasPermission(a.Permission):
			err = apierr.New(apierr.Forbidden, "not allowed")
		default:
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
