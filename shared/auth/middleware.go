package auth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/cloudphone/cloudphone/shared/apierr"
)

type principalKey struct{}

// WithPrincipal returns ctx carrying p, as Require does for a verified request.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the Principal that Require put in ctx.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// BearerToken returns the token of an "Authorization: Bearer <token>" header,
// or "" when there is none.
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// Require returns middleware that admits only requests with a valid bearer
// access token and puts its Principal in the request context. Others get the
// platform's 401 JSON error with a WWW-Authenticate challenge.
func Require(v *Verifier, log *slog.Logger) func(http.Handler) http.Handler {
	if v == nil {
		panic("auth: Require needs a Verifier")
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok := BearerToken(r)
			if _, ok := PrincipalFrom(r.Context()); ok && tok != "" {
				// The edge already verified this request's token.
				next.ServeHTTP(w, r)
				return
			}
			var (
				p   Principal
				err error
			)
			if tok == "" {
				err = apierr.Wrap(apierr.Unauthorized, errors.New("no bearer token"), "invalid or expired token")
			} else {
				p, err = v.Verify(r.Context(), tok)
			}
			if err != nil {
				if apierr.Is(err, apierr.Unauthorized) {
					w.Header().Set("WWW-Authenticate", `Bearer realm="cloudphone"`)
				}
				apierr.Write(w, r, log, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
		})
	}
}
