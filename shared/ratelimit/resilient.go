package ratelimit

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cloudphone/cloudphone/shared/metrics"
)

// ResilientOptions configures a Resilient limiter.
type ResilientOptions struct {
	// Timeout bounds each call to the shared limiter (default 1s). A call
	// that times out may still have been counted by Redis, so the timeout is
	// for a Redis that hangs, not for a slow answer: a short one would let
	// the fallback admit requests Redis admitted too.
	Timeout time.Duration
	// Backoff is how long the fallback decides alone after a failure before
	// one request probes the shared limiter again (default 1s).
	Backoff time.Duration
	Log     *slog.Logger     // required
	Metrics *metrics.Metrics // optional: sets Degraded{component="ratelimit"}
}

// Resilient decides with a shared limiter (Redis) and, while that fails or is
// slower than the timeout, with a per-process fallback for fail-open rules; a
// request that names a fail-closed rule is then refused with Unavailable
// decisions. It never returns an error for a valid rule.
// While degraded, one request per backoff probes the shared limiter; the first
// success restores it. Each transition is logged once. Safe for concurrent use.
type Resilient struct {
	shared   Limiter
	fallback Limiter
	timeout  time.Duration
	backoff  time.Duration
	log      *slog.Logger
	gauge    interface{ Set(float64) }

	degraded atomic.Bool
	probeAt  atomic.Int64 // while degraded: when the next probe may run (Unix ns)
}

// NewResilient returns a limiter that uses shared and falls back to fallback
// (normally NewLocal()).
func NewResilient(shared, fallback Limiter, opt ResilientOptions) (*Resilient, error) {
	if shared == nil || fallback == nil {
		return nil, errors.New("ratelimit: NewResilient needs a shared and a fallback limiter")
	}
	if opt.Log == nil {
		return nil, errors.New("ratelimit: NewResilient needs a logger")
	}
	if opt.Timeout <= 0 {
		opt.Timeout = time.Second
	}
	if opt.Backoff <= 0 {
		opt.Backoff = time.Second
	}
	r := &Resilient{shared: shared, fallback: fallback, timeout: opt.Timeout, backoff: opt.Backoff, log: opt.Log}
	if opt.Metrics != nil {
		g := opt.Metrics.Degraded.WithLabelValues("ratelimit")
		g.Set(0)
		r.gauge = g
	}
	return r, nil
}

// Degraded reports whether the fallback is deciding.
func (r *Resilient) Degraded() bool {
	return r.degraded.Load()
}

// Allow decides one request against one rule.
func (r *Resilient) Allow(ctx context.Context, rule Rule, key string) (Decision, error) {
	ds, err := r.AllowAll(ctx, []Request{{Rule: rule, Key: key}})
	if err != nil {
		return Decision{}, err
	}
	return ds[0], nil
}

// AllowAll decides with the shared limiter when it is healthy (or due for a
// probe), otherwise with the fallback. It fails only on an invalid rule.
func (r *Resilient) AllowAll(ctx context.Context, reqs []Request) ([]Decision, error) {
	for _, q := range reqs {
		if err := q.Rule.Validate(); err != nil {
			return nil, err
		}
	}
	if !r.tryShared() {
		return r.withoutShared(ctx, reqs)
	}
	var ds []Decision
	var err error
	asked := true
	if b, ok := r.shared.(bounded); ok {
		ds, asked, err = b.allowAllBy(ctx, reqs, time.Now().Add(r.timeout))
	} else {
		cctx, cancel := context.WithTimeout(ctx, r.timeout)
		ds, err = r.shared.AllowAll(cctx, reqs)
		cancel()
	}
	if err == nil {
		if asked { // a decision from leases alone says nothing of Redis
			r.up()
		}
		return ds, nil
	}
	if ctx.Err() == nil {
		r.down(err)
	}
	return r.withoutShared(ctx, reqs)
}

// bounded is a shared limiter that takes the deadline of a call as a value,
// so that concurrent calls can share one timer (Redis: one per batch) instead
// of each making a context with its own, and says whether it asked Redis.
type bounded interface {
	allowAllBy(ctx context.Context, reqs []Request, deadline time.Time) ([]Decision, bool, error)
}

// withoutShared decides while the shared limiter cannot: refused when any
// rule fails closed, otherwise by the fallback.
func (r *Resilient) withoutShared(ctx context.Context, reqs []Request) ([]Decision, error) {
	for _, q := range reqs {
		if q.Rule.FailClosed {
			ds := make([]Decision, len(reqs))
			for i, q := range reqs {
				ds[i] = Decision{Rule: q.Rule.Name, Limit: q.Rule.Limit, RetryAfter: r.backoff, ResetAfter: r.backoff,
					At: time.Now(), Unavailable: true}
			}
			return ds, nil
		}
	}
	return r.fallback.AllowAll(ctx, reqs)
}

// tryShared reports whether this call should use the shared limiter: always
// while healthy; while degraded, one call per backoff (the probe).
func (r *Resilient) tryShared() bool {
	if !r.degraded.Load() {
		return true
	}
	now := time.Now().UnixNano()
	at := r.probeAt.Load()
	return now >= at && r.probeAt.CompareAndSwap(at, now+int64(r.backoff))
}

func (r *Resilient) down(err error) {
	r.probeAt.Store(time.Now().Add(r.backoff).UnixNano())
	if r.degraded.CompareAndSwap(false, true) {
		r.log.Warn("rate limiter degraded: redis unreachable", "component", "ratelimit", "err", err)
		if r.gauge != nil {
			r.gauge.Set(1)
		}
	}
}

func (r *Resilient) up() {
	if r.degraded.CompareAndSwap(true, false) {
		r.log.Info("rate limiter restored", "component", "ratelimit")
		if r.gauge != nil {
			r.gauge.Set(0)
		}
	}
}
