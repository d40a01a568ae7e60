package servicetoken

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/cloudphone/cloudphone/shared/apierr"
)

// Allow decides whether the context caller, proven by a valid service token,
// may make request r.
type Allow func(r *http.Request, caller string) bool

// Callers returns an Allow that admits the listed contexts on every route. It
// panics when a name is not a known context.
func Callers(callers ...string) Allow {
	set := contextSet(callers)
	return func(_ *http.Request, caller string) bool { return set[caller] }
}

// Routes returns an Allow from a table of net/http ServeMux patterns
// ("POST /internal/v1/quotas/{user_id}/reserve", "/internal/v1/quotas/") to
// the contexts allowed on them. A request is matched as a ServeMux would route
// it (method, wildcards, most specific pattern wins); a request no pattern
// matches is allowed to no one. It panics on an invalid or conflicting pattern
// or an unknown context name, which are wiring mistakes.
func Routes(table map[string][]string) Allow {
	mux := http.NewServeMux()
	allowed := make(map[string]map[string]bool, len(table))
	for pattern, callers := range table {
		allowed[pattern] = contextSet(callers)
		mux.Handle(pattern, http.NotFoundHandler())
	}
	return func(r *http.Request, caller string) bool {
		_, pattern := mux.Handler(r)
		return allowed[pattern][caller]
	}
}

func contextSet(callers []string) map[string]bool {
	set := make(map[string]bool, len(callers))
	for _, c := range callers {
		if !KnownContext(c) {
			panic(fmt.Sprintf("servicetoken: %q is not a known context", c))
		}
		set[c] = true
	}
	return set
}

type claimsKey struct{}

// WithClaims returns ctx carrying c, as Guard does for a verified request.
func WithClaims(ctx context.Context, c Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// ClaimsFrom returns the service-token claims Guard put in ctx.
func ClaimsFrom(ctx context.Context) (Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(Claims)
	return c, ok
}

// CallerFrom returns the calling context Guard put in ctx.
func CallerFrom(ctx context.Context) (string, bool) {
	c, ok := ClaimsFrom(ctx)
	return c.Caller, ok
}

// Guard returns middleware for a context's /internal/v1 routes. It admits a
// request only with "Authorization: Bearer <service token>" for audience (the
// context serving the route) from a caller allow admits, and puts the token's
// claims in the request context (ClaimsFrom, CallerFrom). A missing or invalid
// token — a user token included — is answered 401, a valid token from a
// caller not allowed on the route 403, both as the platform's JSON error.
func Guard(v *Verifier, audience string, allow Allow, log *slog.Logger) func(http.Handler) http.Handler {
	if v == nil || allow == nil {
		panic("servicetoken: Guard needs a Verifier and an Allow")
	}
	if !KnownContext(audience) {
		panic(fmt.Sprintf("servicetoken: Guard: audience %q is not a known context", audience))
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok := bearer(r)
			if tok == "" {
				unauthorized(w, r, log, errUnauthorized(errors.New("no bearer token")))
				return
			}
			c, err := v.Verify(r.Context(), tok, audience)
			if err != nil {
				unauthorized(w, r, log, err)
				return
			}
			if !allow(r, c.Caller) {
				apierr.Write(w, r, log, apierr.New(apierr.Forbidden, "caller not allowed"))
				return
			}
			next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), c)))
		})
	}
}

// RejectServiceTokens returns middleware for public routes that answers 401
// to a request whose bearer token is a service token (IsServiceToken), before
// any other authentication runs. Other requests pass untouched.
func RejectServiceTokens(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tok := bearer(r); tok != "" && IsServiceToken(tok) {
				unauthorized(w, r, log, errUnauthorized(errors.New("service token on a public route")))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func unauthorized(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="cloudphone-internal"`)
	apierr.Write(w, r, log, err)
}

// bearer returns the token of an "Authorization: Bearer <token>" header, or "".
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}
