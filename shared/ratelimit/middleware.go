package ratelimit

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/clientip"
)

// MiddlewareOptions configures Middleware.
type MiddlewareOptions struct {
	// ClientIP returns the client address (clientip.Resolver.ClientIP).
	// Required.
	ClientIP func(*http.Request) netip.Addr
	// UserID returns the authenticated user of the request, if any; user rules
	// apply only when it reports ok. With auth.PrincipalFrom it must run inside
	// the authentication middleware.
	UserID func(*http.Request) (string, bool)
	// Key returns the key of a ScopeKey policy for r (for instance the
	// account a login names); such a policy applies only when it reports ok.
	Key func(r *http.Request, p Policy) (string, bool)
	// OnRefused is called after a refusal with the client address (the
	// auto-ban counts refusals). It runs on the request's goroutine.
	OnRefused func(ctx context.Context, ip netip.Addr)
	// Log receives limiter failures when the limiter is not a Resilient.
	Log *slog.Logger
}

// Middleware applies the IP rules (every route, then the route's own) and,
// when the request carries a user, the user rules, in one limiter call before
// the handler. A refusal is 429 rate_limited with Retry-After and the
// RateLimit-* headers of the refusing rule (the one that waits longest); an
// admitted request carries the RateLimit-* headers of the rule with the fewest
// remaining requests. A limiter error lets the request through.
func Middleware(ls *Limits, opt MiddlewareOptions) func(http.Handler) http.Handler {
	if ls == nil || opt.ClientIP == nil {
		panic("ratelimit: Middleware needs limits and a ClientIP function")
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ip := opt.ClientIP(r)
			var user string
			var hasUser bool
			if opt.UserID != nil {
				user, hasUser = opt.UserID(r)
			}
			reqs := ls.match(r, clientip.Key(ip), user, hasUser, opt.Key)
			if len(reqs) == 0 {
				next.ServeHTTP(w, r)
				return
			}
			ds, err := ls.limiter.AllowAll(r.Context(), reqs)
			if err != nil {
				log.WarnContext(r.Context(), "rate limit check failed; request let through", "err", err)
				next.ServeHTTP(w, r)
				return
			}
			if ds[0].Allowed {
				tightest := ds[0]
				for _, d := range ds[1:] {
					if d.Remaining < tightest.Remaining {
						tightest = d
					}
				}
				SetHeaders(w.Header(), tightest)
				next.ServeHTTP(w, r)
				return
			}
			if ds[0].Unavailable { // not the client's doing: no ban, no refusal count
				apierr.Write(w, r, log, Refusal(ds[0]))
				return
			}
			var refusing []Decision
			for _, d := range ds {
				if d.RetryAfter > 0 {
					refusing = append(refusing, d)
				}
			}
			worst := ds[0]
			for _, d := range refusing {
				if d.RetryAfter > worst.RetryAfter {
					worst = d
				}
			}
			ls.refused(refusing...)
			if opt.OnRefused != nil {
				opt.OnRefused(r.Context(), ip)
			}
			SetHeaders(w.Header(), worst)
			apierr.Write(w, r, log, Refusal(worst))
		})
	}
}

// SetHeaders sets RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset
// (seconds until every counted request has left the window, rounded up)
// from d.
func SetHeaders(h http.Header, d Decision) {
	// One allocation for the three values (each a slice of its own
	// capacity); the names are canonical already.
	vs := []string{strconv.Itoa(d.Limit), strconv.Itoa(d.Remaining), strconv.Itoa(ceilSeconds(d.ResetAfter))}
	h["Ratelimit-Limit"] = vs[0:1:1]
	h["Ratelimit-Remaining"] = vs[1:2:2]
	h["Ratelimit-Reset"] = vs[2:3:3]
}

func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}
