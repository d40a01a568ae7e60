package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/metrics"
)

// Limits applies a Table with a Limiter: the middleware asks it which
// policies match a request, and handlers call Check for keyed rules. Safe for
// concurrent use.
type Limits struct {
	limiter Limiter
	metrics *metrics.Metrics
	table   Table
	byName  map[string]Policy
	global  []Policy            // Route == "", scope ip or user
	byRoute map[string][]Policy // route pattern → its ip and user policies
	mux     *http.ServeMux      // matches a request to a route pattern
	// methods are those the route patterns name (GET implies HEAD); a
	// request with another method matches none of them, so the mux is not
	// asked. anyMethod: a pattern names no method.
	methods   map[string]bool
	anyMethod bool
}

// NewLimits validates t and returns the limits it describes, decided by l
// (normally a Resilient). m is optional; when set, refusals are counted in
// m.RateLimited{rule}.
func NewLimits(l Limiter, t Table, m *metrics.Metrics) (*Limits, error) {
	if l == nil {
		return nil, errors.New("ratelimit: NewLimits needs a limiter")
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	ls := &Limits{limiter: l, metrics: m, table: t, byName: map[string]Policy{}, byRoute: map[string][]Policy{}, mux: http.NewServeMux(),
		methods: map[string]bool{}}
	for _, p := range t {
		ls.byName[p.Name] = p
		if p.Route == "" {
			ls.global = append(ls.global, p)
			continue
		}
		if _, ok := ls.byRoute[p.Route]; !ok {
			ls.mux.Handle(p.Route, http.NotFoundHandler())
			method, _, ok := strings.Cut(p.Route, " ")
			switch {
			case !ok || strings.ContainsAny(method, "/."):
				ls.anyMethod = true // no method: "/path" or "host/path"
			case method == http.MethodGet:
				ls.methods[method], ls.methods[http.MethodHead] = true, true
			default:
				ls.methods[method] = true
			}
		}
		ls.byRoute[p.Route] = append(ls.byRoute[p.Route], p)
	}
	return ls, nil
}

// Table returns the policies in force.
func (ls *Limits) Table() Table { return ls.table }

// Policy returns the named policy.
func (ls *Limits) Policy(name string) (Policy, bool) {
	p, ok := ls.byName[name]
	return p, ok
}

// Check counts one request against the named rule for key (for example
// RuleLoginAccount with the lower-cased login). It returns the decision and,
// when the rule refused, an apierr RateLimited error carrying RetryAfter that
// the handler can return as is. An unknown rule or a failing limiter is a
// plain error.
func (ls *Limits) Check(ctx context.Context, rule, key string) (Decision, error) {
	p, ok := ls.byName[rule]
	if !ok {
		return Decision{}, fmt.Errorf("rate limit rule %s: not in the table", rule)
	}
	d, err := ls.limiter.Allow(ctx, p.Rule, key)
	if err != nil {
		return Decision{}, err
	}
	if !d.Allowed {
		if !d.Unavailable {
			ls.refused(d)
		}
		return d, Refusal(d)
	}
	return d, nil
}

// Refusal returns the API error for a refused decision: 429 rate_limited with
// Retry-After, or 503 unavailable when the limiter could not decide a
// fail-closed rule.
func Refusal(d Decision) error {
	if d.Unavailable {
		e := apierr.New(apierr.Unavailable, "the rate limiter is unavailable, retry later")
		e.RetryAfter = d.RetryAfter
		return e
	}
	e := apierr.New(apierr.RateLimited, "too many requests, retry later")
	e.RetryAfter = d.RetryAfter
	return e
}

func (ls *Limits) refused(ds ...Decision) {
	if ls.metrics == nil {
		return
	}
	for _, d := range ds {
		ls.metrics.RateLimited.WithLabelValues(d.Rule).Inc()
	}
}

// match returns the requests the middleware decides for r.
func (ls *Limits) match(r *http.Request, ipKey, user string, hasUser bool, key func(*http.Request, Policy) (string, bool)) []Request {
	var route []Policy
	if len(ls.byRoute) > 0 && (ls.anyMethod || ls.methods[r.Method]) {
		if _, pattern := ls.mux.Handler(r); pattern != "" {
			route = ls.byRoute[pattern]
		}
	}
	reqs := make([]Request, 0, len(ls.global)+len(route))
	for _, ps := range [][]Policy{route, ls.global} {
		for _, p := range ps {
			switch {
			case p.Scope == ScopeIP:
				reqs = append(reqs, Request{Rule: p.Rule, Key: ipKey})
			case p.Scope == ScopeUser && hasUser:
				reqs = append(reqs, Request{Rule: p.Rule, Key: user})
			case p.Scope == ScopeKey && key != nil:
				if k, ok := key(r, p); ok {
					reqs = append(reqs, Request{Rule: p.Rule, Key: k})
				}
			}
		}
	}
	return reqs
}
