package ratelimit

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// decideFunc makes one decision and returns whether it admitted and the
// limiter's clock at the decision.
type decideFunc func(ctx context.Context) (bool, time.Time, error)

// burstAtEdges runs goroutines that, for each edge, sleep until pre before it
// and then call decide as fast as they can until post after it. It returns
// the limiter-clock times of the admitted requests and how many were decided.
func burstAtEdges(t *testing.T, goroutines int, edges []time.Time, pre, post time.Duration, decide decideFunc) ([]time.Time, int) {
	t.Helper()
	var (
		mu       sync.Mutex
		admitted []time.Time
		total    int
		firstErr error
		wg       sync.WaitGroup
	)
	ctx := context.Background()
	for range goroutines {
		wg.Go(func() {
			var mine []time.Time
			n := 0
			for _, e := range edges {
				time.Sleep(time.Until(e.Add(-pre)))
				for time.Now().Before(e.Add(post)) {
					ok, at, err := decide(ctx)
					n++
					if err != nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
						return
					}
					if ok {
						mine = append(mine, at)
					}
				}
			}
			mu.Lock()
			admitted = append(admitted, mine...)
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("decide: %v", firstErr)
	}
	slices.SortFunc(admitted, func(a, b time.Time) int { return a.Compare(b) })
	return admitted, total
}

// maxInWindow returns the largest number of times in any half-open window
// (s−w, s]; windows ending at an admission are the only ones that matter.
func maxInWindow(sorted []time.Time, w time.Duration) (int, time.Time) {
	best, at := 0, time.Time{}
	lo := 0
	for hi, s := range sorted {
		for !sorted[lo].After(s.Add(-w)) {
			lo++
		}
		if n := hi - lo + 1; n > best {
			best, at = n, s
		}
	}
	return best, at
}

// edgesEvery returns count edges step apart, aligned to step, starting with
// the second edge from now.
func edgesEvery(step time.Duration, count int) []time.Time {
	first := time.Now().Truncate(step).Add(2 * step)
	out := make([]time.Time, count)
	for i := range out {
		out[i] = first.Add(time.Duration(i) * step)
	}
	return out
}

// fixedWindow is the naive limiter the accuracy harness must catch: INCR a
// counter per fixed window of Redis time.
var fixedWindow = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local w = tonumber(ARGV[2])
local key = KEYS[1] .. ':' .. math.floor(now / w)
local n = redis.call('INCR', key)
if n == 1 then redis.call('PEXPIRE', key, math.ceil(2 * w / 1000)) end
local ok = 0
if n <= tonumber(ARGV[1]) then ok = 1 end
return {ok, now}
`)

const (
	accLimit   = 50
	accWindow  = time.Second
	accWorkers = 64
)

// TestRedisNoRollingWindowAdmitsMoreThanLimitUnderBoundaryBursts bursts from
// 64 goroutines around every bucket edge (which includes every window edge)
// for 2.5 windows and checks, against the Redis time of each admission, that
// no rolling window of length W held more than L admissions.
func TestRedisNoRollingWindowAdmitsMoreThanLimitUnderBoundaryBursts(t *testing.T) {
	t.Parallel()
	rdb := redisClient(t)
	l, err := NewRedis(rdb, RedisOptions{Prefix: testPrefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	rule := Rule{Name: "acc", Limit: accLimit, Window: accWindow}
	bucket := accWindow / DefaultBuckets
	edges := edgesEvery(bucket, 25)
	admitted, total := burstAtEdges(t, accWorkers, edges, 10*time.Millisecond, 10*time.Millisecond,
		func(ctx context.Context) (bool, time.Time, error) {
			d, err := l.Allow(ctx, rule, "client")
			return d.Allowed, d.At, err
		})
	worst, at := maxInWindow(admitted, accWindow)
	t.Logf("decisions %d, admitted %d, most in any %s window %d (ending %s)", total, len(admitted), accWindow, worst, at.Format("15:04:05.000000"))
	if worst > accLimit {
		t.Fatalf("a rolling %s window admitted %d > limit %d", accWindow, worst, accLimit)
	}
	// Not trivially strict: over 2.5 windows the limiter must have admitted at
	// least L per full window it spanned, less one bucket's share each.
	if min := 2 * (accLimit - accLimit/DefaultBuckets); len(admitted) < min {
		t.Fatalf("admitted %d < %d: the limiter refuses requests it has room for", len(admitted), min)
	}
}

// TestLocalNoRollingWindowAdmitsMoreThanLimitUnderBoundaryBursts is the same
// adversary against the per-process fallback, with the process clock.
func TestLocalNoRollingWindowAdmitsMoreThanLimitUnderBoundaryBursts(t *testing.T) {
	t.Parallel()
	l := NewLocal()
	rule := Rule{Name: "acc", Limit: accLimit, Window: accWindow}
	edges := edgesEvery(accWindow/DefaultBuckets, 25)
	admitted, total := burstAtEdges(t, accWorkers, edges, 10*time.Millisecond, 10*time.Millisecond,
		func(ctx context.Context) (bool, time.Time, error) {
			d, err := l.Allow(ctx, rule, "client")
			return d.Allowed, d.At, err
		})
	worst, _ := maxInWindow(admitted, accWindow)
	t.Logf("decisions %d, admitted %d, most in any %s window %d", total, len(admitted), accWindow, worst)
	if worst > accLimit {
		t.Fatalf("a rolling %s window admitted %d > limit %d", accWindow, worst, accLimit)
	}
	if min := 2 * (accLimit - accLimit/DefaultBuckets); len(admitted) < min {
		t.Fatalf("admitted %d < %d: the limiter refuses requests it has room for", len(admitted), min)
	}
}

// TestAccuracyHarnessCatchesFixedWindow shows the harness can fail: the same
// adversary around window edges drives a fixed-window counter well above L in
// one rolling window.
func TestAccuracyHarnessCatchesFixedWindow(t *testing.T) {
	t.Parallel()
	rdb := redisClient(t)
	key := testPrefix(t) + "fixed"
	edges := edgesEvery(accWindow, 2)
	admitted, _ := burstAtEdges(t, accWorkers, edges, 20*time.Millisecond, 20*time.Millisecond,
		func(ctx context.Context) (bool, time.Time, error) {
			v, err := fixedWindow.Run(ctx, rdb, []string{key}, accLimit, accWindow.Microseconds()).Int64Slice()
			if err != nil {
				return false, time.Time{}, err
			}
			return v[0] == 1, time.UnixMicro(v[1]), nil
		})
	worst, _ := maxInWindow(admitted, accWindow)
	t.Logf("fixed window: most in any %s window %d (limit %d)", accWindow, worst, accLimit)
	if worst <= accLimit {
		t.Fatalf("the harness did not catch the fixed window (most %d ≤ %d): the adversary is too weak", worst, accLimit)
	}
}

// TestLocalDecisionsFollowTheRing checks the algorithm step by step on a
// fixed clock: counts, Remaining, RetryAfter and ResetAfter.
func TestLocalDecisionsFollowTheRing(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_000_000_000) // on a bucket edge
	l := newLocal(10, func() time.Time { return now })
	rule := Rule{Name: "r", Limit: 3, Window: time.Second} // buckets of 100ms
	ctx := context.Background()
	allow := func() Decision {
		t.Helper()
		d, err := l.Allow(ctx, rule, "k")
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := allow(); !d.Allowed || d.Remaining != 2 || d.ResetAfter != 1100*time.Millisecond || d.RetryAfter != 0 {
		t.Fatalf("first: %+v", d)
	}
	now = now.Add(250 * time.Millisecond)
	allow()
	d := allow()
	if !d.Allowed || d.Remaining != 0 || d.RetryAfter != 850*time.Millisecond {
		t.Fatalf("third (at +250ms): %+v; want remaining 0, retry when the first bucket leaves at +1100ms", d)
	}
	if d := allow(); d.Allowed || d.RetryAfter != 850*time.Millisecond {
		t.Fatalf("fourth: %+v", d)
	}
	// At +1099ms the first bucket still overlaps the window; at +1100ms it has left.
	now = time.UnixMilli(1_000_000_000 + 1099)
	if d := allow(); d.Allowed {
		t.Fatalf("at +1099ms the request of +0 still counts: %+v", d)
	}
	now = time.UnixMilli(1_000_000_000 + 1100)
	if d := allow(); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("at +1100ms: %+v", d)
	}
	// After a full idle window + bucket, the key is empty again.
	now = now.Add(1200 * time.Millisecond)
	if d := allow(); !d.Allowed || d.Remaining != 2 {
		t.Fatalf("after idling: %+v", d)
	}
}

// TestRedisAndLocalAgreeOnASequence runs the same requests through both
// implementations within one bucket and compares the decisions.
func TestRedisAndLocalAgreeOnASequence(t *testing.T) {
	t.Parallel()
	rdb := redisClient(t)
	r, err := NewRedis(rdb, RedisOptions{Prefix: testPrefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	l := NewLocal()
	ctx := context.Background()
	rule := Rule{Name: "seq", Limit: 4, Window: time.Minute}
	for i := range 6 {
		dr, err := r.Allow(ctx, rule, "k")
		if err != nil {
			t.Fatal(err)
		}
		dl, _ := l.Allow(ctx, rule, "k")
		if dr.Allowed != dl.Allowed || dr.Remaining != dl.Remaining || dr.Limit != dl.Limit {
			t.Fatalf("request %d: redis %+v, local %+v", i+1, dr, dl)
		}
		if dr.Allowed != (i < 4) {
			t.Fatalf("request %d allowed=%v", i+1, dr.Allowed)
		}
		if !dr.Allowed && (dr.RetryAfter <= 0 || dr.RetryAfter > rule.Window+rule.Window/DefaultBuckets) {
			t.Fatalf("request %d: retry after %s", i+1, dr.RetryAfter)
		}
	}
	ttl, err := rdb.PTTL(ctx, r.Key("seq", "k")).Result()
	if err != nil || ttl <= 0 || ttl > rule.Window+rule.Window/DefaultBuckets {
		t.Fatalf("key TTL %s (err %v): want ≤ W + W/N", ttl, err)
	}
}

// TestAllowAllCountsOnlyWhenEveryRuleHasRoom checks that a request refused by
// one rule consumes nothing from the others.
func TestAllowAllCountsOnlyWhenEveryRuleHasRoom(t *testing.T) {
	t.Parallel()
	rdb := redisClient(t)
	r, err := NewRedis(rdb, RedisOptions{Prefix: testPrefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		l    Limiter
	}{{"redis", r}, {"local", NewLocal()}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			wide := Rule{Name: "wide", Limit: 10, Window: time.Minute}
			narrow := Rule{Name: "narrow", Limit: 1, Window: time.Minute}
			reqs := []Request{{Rule: wide, Key: tc.name}, {Rule: narrow, Key: tc.name}}
			if ds, err := tc.l.AllowAll(ctx, reqs); err != nil || !ds[0].Allowed || !ds[1].Allowed {
				t.Fatalf("first: %+v %v", ds, err)
			}
			for range 3 {
				ds, err := tc.l.AllowAll(ctx, reqs)
				if err != nil || ds[0].Allowed || ds[1].Allowed || ds[1].RetryAfter <= 0 || ds[0].RetryAfter != 0 {
					t.Fatalf("refused: %+v %v", ds, err)
				}
			}
			d, err := tc.l.Allow(ctx, wide, tc.name)
			if err != nil || !d.Allowed || d.Remaining != 8 {
				t.Fatalf("wide after refusals: %+v %v; want remaining 8 (refusals counted nothing)", d, err)
			}
		})
	}
}
