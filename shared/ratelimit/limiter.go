package ratelimit

import (
	"context"
	"fmt"
	"time"
)

// MaxLimit is the largest Limit a rule may have: counts are stored as 16-bit
// integers.
const MaxLimit = 65535

// DefaultBuckets is the number of sub-windows a window is cut into.
const DefaultBuckets = 10

// Rule is one limit: at most Limit requests in any rolling Window. Name
// identifies the rule in keys, metrics and the table.
//
// FailClosed says what happens while the shared limiter (Redis) cannot
// decide: a fail-closed rule refuses (503 unavailable), so it never admits
// more than Limit whatever the outage; a fail-open rule is decided by the
// per-process fallback, so a request is not failed for the limiter's sake but
// several processes together may admit up to Limit each.
type Rule struct {
	Name       string
	Limit      int
	Window     time.Duration
	FailClosed bool
}

// Validate reports a rule that cannot be enforced.
func (r Rule) Validate() error {
	switch {
	case r.Name == "":
		return fmt.Errorf("rate limit rule without a name")
	case r.Limit < 1 || r.Limit > MaxLimit:
		return fmt.Errorf("rate limit rule %s: limit %d out of range 1..%d", r.Name, r.Limit, MaxLimit)
	case r.Window < time.Millisecond:
		return fmt.Errorf("rate limit rule %s: window %s shorter than 1ms", r.Name, r.Window)
	}
	return nil
}

// Decision is the outcome of one rule for one request.
type Decision struct {
	Rule    string
	Allowed bool // the request was admitted (by every rule of its check)
	// Limit is the rule's limit; Remaining how many more requests it would
	// admit now (0 when it refused).
	Limit, Remaining int
	// ResetAfter is the time until every request counted by the rule has left
	// the window; RetryAfter, when the rule has no room, the time until it
	// will admit again (0 otherwise).
	ResetAfter, RetryAfter time.Duration
	// At is the limiter's clock at the decision: Redis server time for the
	// Redis limiter, the process clock for Local.
	At time.Time
	// Unavailable marks a refusal made because the shared limiter could not
	// decide a fail-closed rule (not because the rule had no room).
	Unavailable bool
}

// Request is one rule applied to one key (an IP, a user id, an account).
type Request struct {
	Rule Rule
	Key  string
}

// Limiter decides requests. AllowAll admits a request only if every rule has
// room and counts it against every rule only then; the decisions are in the
// order of reqs and all carry the same Allowed. Implementations are safe for
// concurrent use; an error means no decision was made.
type Limiter interface {
	Allow(ctx context.Context, rule Rule, key string) (Decision, error)
	AllowAll(ctx context.Context, reqs []Request) ([]Decision, error)
}

// geometry is the bucket layout of a rule: width in microseconds and the
// number of slots (buckets + 1) of the ring.
type geometry struct {
	width int64
	slots int
}

func geometryOf(w time.Duration, buckets int) geometry {
	us := w.Microseconds()
	width := (us + int64(buckets) - 1) / int64(buckets)
	if width < 1 {
		width = 1
	}
	return geometry{width: width, slots: buckets + 1}
}

// ttl is how long an idle key must be kept: until its newest bucket has left
// the window.
func (g geometry) ttl() time.Duration {
	return time.Duration(g.width*int64(g.slots)) * time.Microsecond
}

// ring is the Go form of the state the Lua script keeps in Redis.
type ring struct {
	newest int64    // index of the newest bucket
	counts []uint16 // counts[b % slots] for b in newest-slots+1 … newest
}

// state is one rule's view of its ring at a decision.
type state struct {
	r     *ring
	g     geometry
	limit int
	k     int64
	sum   int
}

// advance moves r to time now (µs) and returns the rule's state; it mirrors
// the first loop of the Lua script.
func advance(r *ring, g geometry, limit int, now int64) state {
	k := now / g.width
	slots := int64(g.slots)
	switch {
	case len(r.counts) != g.slots || k-r.newest >= slots || r.newest-k > slots:
		r.counts = make([]uint16, g.slots)
		r.newest = k
	case k < r.newest:
		k = r.newest
	default:
		for b := r.newest + 1; b <= k; b++ {
			r.counts[b%slots] = 0
		}
		r.newest = k
	}
	sum := 0
	for _, c := range r.counts {
		sum += int(c)
	}
	return state{r: r, g: g, limit: limit, k: k, sum: sum}
}

// decision reports s after the request was (or was not) admitted; it mirrors
// the second loop of the Lua script.
func (s state) decision(name string, allowed bool, now int64) Decision {
	slots := int64(s.g.slots)
	d := Decision{Rule: name, Allowed: allowed, Limit: s.limit, Remaining: max(s.limit-s.sum, 0), At: time.UnixMicro(now)}
	if s.sum >= s.limit {
		sum := s.sum
		for b := s.k - slots + 1; b <= s.k; b++ {
			sum -= int(s.r.counts[b%slots])
			if sum < s.limit {
				d.RetryAfter = time.Duration((b+slots)*s.g.width-now) * time.Microsecond
				break
			}
		}
	}
	for b := s.k; b > s.k-slots; b-- {
		if s.r.counts[b%slots] > 0 {
			d.ResetAfter = time.Duration((b+slots)*s.g.width-now) * time.Microsecond
			break
		}
	}
	return d
}

func (s *state) admit() {
	s.r.counts[s.k%int64(s.g.slots)]++
	s.sum++
}
