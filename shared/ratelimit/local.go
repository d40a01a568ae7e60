package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Local is the per-process limiter: the algorithm of the Redis limiter over a
// map in memory, with time from the process clock. It never fails. Idle keys
// are dropped once every count they hold has left the window. Safe for
// concurrent use.
type Local struct {
	buckets int
	now     func() time.Time

	mu        sync.Mutex
	rings     map[string]*localRing
	lastSweep time.Time
}

type localRing struct {
	ring
	expires time.Time
}

// NewLocal returns an empty per-process limiter with DefaultBuckets buckets
// per window.
func NewLocal() *Local { return newLocal(DefaultBuckets, time.Now) }

func newLocal(buckets int, now func() time.Time) *Local {
	return &Local{buckets: buckets, now: now, rings: map[string]*localRing{}}
}

// Allow decides one request against one rule.
func (l *Local) Allow(ctx context.Context, rule Rule, key string) (Decision, error) {
	ds, err := l.AllowAll(ctx, []Request{{Rule: rule, Key: key}})
	if err != nil {
		return Decision{}, err
	}
	return ds[0], nil
}

// AllowAll decides one request against every rule of reqs; it fails only on
// an invalid rule.
func (l *Local) AllowAll(_ context.Context, reqs []Request) ([]Decision, error) {
	for _, q := range reqs {
		if err := q.Rule.Validate(); err != nil {
			return nil, err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.now()
	now := t.UnixMicro()
	if t.Sub(l.lastSweep) > time.Minute {
		l.sweep(t)
	}
	states := make([]state, len(reqs))
	rings := make([]*localRing, len(reqs))
	all := true
	for i, q := range reqs {
		k := q.Rule.Name + ":" + q.Key
		r := l.rings[k]
		if r == nil {
			r = &localRing{}
			l.rings[k] = r
		}
		rings[i] = r
		states[i] = advance(&r.ring, geometryOf(q.Rule.Window, l.buckets), q.Rule.Limit, now)
		if states[i].sum >= q.Rule.Limit {
			all = false
		}
	}
	out := make([]Decision, len(reqs))
	for i, q := range reqs {
		if all {
			states[i].admit()
			rings[i].expires = t.Add(states[i].g.ttl())
		}
		out[i] = states[i].decision(q.Rule.Name, all, now)
	}
	return out, nil
}

func (l *Local) sweep(now time.Time) {
	for k, r := range l.rings {
		if now.After(r.expires) {
			delete(l.rings, k)
		}
	}
	l.lastSweep = now
}

// Len returns how many keys the limiter holds.
func (l *Local) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.rings)
}
