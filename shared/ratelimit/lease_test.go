package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestLeasingProcessesNeverAdmitMoreThanTheLimitTogether runs four limiters,
// each with its own Redis client as four processes would, against one key
// on one Redis: 16 goroutines each ask for 2.5 windows, so that every bucket
// edge, where a lease ends, sees requests; either without pause (a flood,
// which uses up every lease at once) or paced at twice the limit's rate
// altogether (so leases are left with admissions when their bucket ends).
// The limit is large enough for leases (a good part of the admissions must
// be decided from one), and against the time of each admission (Redis time,
// or its estimate from a lease) no rolling window may hold more than the
// limit: the bound of the package doc, with no excess for leasing.
func TestLeasingProcessesNeverAdmitMoreThanTheLimitTogether(t *testing.T) {
	t.Parallel()
	const processes, each, limit = 4, 16, 400
	for _, tc := range []struct {
		name  string
		pause time.Duration // between two requests of one goroutine
	}{{"flood", 0}, {"paced", processes * each * accWindow / (2 * limit)}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prefix := testPrefix(t)
			hook := &roundTrips{}
			ls := make([]*Redis, processes)
			for i := range ls {
				rdb := redisClient(t)
				rdb.AddHook(hook)
				l, err := NewRedis(rdb, RedisOptions{Prefix: prefix})
				if err != nil {
					t.Fatal(err)
				}
				ls[i] = l
			}
			rule := Rule{Name: "lease", Limit: limit, Window: accWindow}
			bucket := accWindow / DefaultBuckets
			edges := edgesEvery(bucket, 25)
			var next atomic.Int64
			admitted, total := burstAtEdges(t, processes*each, edges, bucket/2, bucket/2,
				func(ctx context.Context) (bool, time.Time, error) {
					n := next.Add(1)
					if tc.pause > 0 { // jittered, so the goroutines spread out
						time.Sleep(tc.pause/2 + time.Duration(n*7919%int64(tc.pause)))
					}
					d, err := ls[n%processes].Allow(ctx, rule, "client")
					return d.Allowed, d.At, err
				})
			worst, at := maxInWindow(admitted, accWindow)
			leased := 0
			for _, l := range ls {
				l.leases.mu.Lock()
				leased += int(l.leases.decided)
				l.leases.mu.Unlock()
			}
			t.Logf("decisions %d in %d round trips, admitted %d (%d from leases), most in any %s window %d (ending %s)",
				total, hook.n.Load(), len(admitted), leased, accWindow, worst, at.Format("15:04:05.000000"))
			if worst > limit {
				t.Fatalf("a rolling %s window admitted %d > limit %d", accWindow, worst, limit)
			}
			if leased*5 < len(admitted) {
				t.Fatalf("%d of %d admissions were decided from leases: too few to test them", leased, len(admitted))
			}
			// Not trivially strict: over 2.5 windows at least one window's
			// worth must have been admitted.
			if len(admitted) < limit {
				t.Fatalf("admitted %d < %d: leases waste most of the room", len(admitted), limit)
			}
		})
	}
}

// TestLeaseDecisionsAreCountedInRedis checks, on one key, that a process
// decides from a lease once the key is busy, that every admission it makes
// is counted in Redis before it is made (another process sees the count),
// and that a refusal by another rule of the same request gives the lease's
// admission back.
func TestLeaseDecisionsAreCountedInRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prefix := testPrefix(t)
	hook := &roundTrips{}
	rdb := redisClient(t)
	rdb.AddHook(hook)
	a, err := NewRedis(rdb, RedisOptions{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewRedis(redisClient(t), RedisOptions{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	rule := Rule{Name: "busy", Limit: 1000, Window: time.Hour} // one bucket lasts 6 minutes
	for i := range 100 {
		d, err := a.Allow(ctx, rule, "k")
		if err != nil || !d.Allowed || d.Remaining != rule.Limit-1-i {
			t.Fatalf("request %d: %+v %v; want remaining %d", i+1, d, err, rule.Limit-1-i)
		}
	}
	if n := hook.n.Load(); n > 10 {
		t.Fatalf("100 requests took %d round trips: no lease", n)
	}
	// Whatever a leased, Redis counted: b sees at least the 100 admissions.
	d, err := b.Allow(ctx, rule, "k")
	if err != nil || !d.Allowed || d.Remaining > rule.Limit-101 {
		t.Fatalf("other process: %+v %v; want at most %d remaining", d, err, rule.Limit-101)
	}
	// A request refused by a narrow rule takes nothing from the lease.
	narrow := Rule{Name: "narrow", Limit: 1, Window: time.Hour}
	if _, err := b.Allow(ctx, narrow, "k"); err != nil {
		t.Fatal(err)
	}
	a.leases.mu.Lock()
	before := a.leases.m[a.Key("busy", "k")].tokens
	a.leases.mu.Unlock()
	if before == 0 {
		t.Fatal("no lease admissions left to test with")
	}
	ds, err := a.AllowAll(ctx, []Request{{Rule: rule, Key: "k"}, {Rule: narrow, Key: "k"}})
	if err != nil || ds[0].Allowed || ds[1].Allowed || ds[1].RetryAfter <= 0 {
		t.Fatalf("refused by the narrow rule: %+v %v", ds, err)
	}
	a.leases.mu.Lock()
	after := a.leases.m[a.Key("busy", "k")].tokens
	a.leases.mu.Unlock()
	if after != before {
		t.Fatalf("lease admissions %d before a refused request, %d after", before, after)
	}
}

// TestLeasesAreNotTakenNearTheLimit checks that a key with little room is
// decided in Redis request by request, so several processes near the limit
// admit exactly the limit.
func TestLeasesAreNotTakenNearTheLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prefix := testPrefix(t)
	var ls []*Redis
	for range 3 {
		l, err := NewRedis(redisClient(t), RedisOptions{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	rule := Rule{Name: "small", Limit: 2*leaseShare - 1, Window: time.Hour}
	admitted := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 3 * rule.Limit {
		wg.Go(func() {
			d, err := ls[i%3].Allow(ctx, rule, "k")
			if err != nil {
				t.Error(err)
				return
			}
			if d.Allowed {
				mu.Lock()
				admitted++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if admitted != rule.Limit {
		t.Fatalf("admitted %d, want exactly the limit %d", admitted, rule.Limit)
	}
	for i, l := range ls {
		l.leases.mu.Lock()
		for k, e := range l.leases.m {
			if e.tokens > 0 {
				t.Errorf("process %d holds a lease of %d on %s", i, e.tokens, k)
			}
		}
		l.leases.mu.Unlock()
	}
}

// TestALeaseEndsWithItsBucket checks that a process stops deciding from a
// lease once Redis's clock has left the bucket the lease was counted in: an
// admission after that would count in no bucket of a later window.
func TestALeaseEndsWithItsBucket(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redisClient(t)
	l, err := NewRedis(rdb, RedisOptions{Prefix: testPrefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	rule := Rule{Name: "ends", Limit: 10000, Window: time.Second} // buckets of 100ms
	width := geometryOf(rule.Window, DefaultBuckets).width
	decided := func() int64 {
		l.leases.mu.Lock()
		defer l.leases.mu.Unlock()
		return l.leases.decided
	}
	for i := range 20 {
		// Take a lease with admissions left (four requests in a row make the
		// key busy), far enough from its bucket's end that the next request
		// is decided from it; a fresh key for each try.
		var bucket int64
		var key string
		for try := 0; ; try++ {
			key = fmt.Sprint(i, ".", try)
			for range 4 {
				if _, err := l.Allow(ctx, rule, key); err != nil {
					t.Fatal(err)
				}
			}
			l.leases.mu.Lock()
			e := l.leases.m[l.Key(rule.Name, key)]
			left, redisNow := e.tokens, e.redisNow
			l.leases.mu.Unlock()
			if left > 1 && redisNow%width < width/2 {
				bucket = redisNow / width
				break
			}
		}
		before := decided()
		if _, err := l.Allow(ctx, rule, key); err != nil {
			t.Fatal(err)
		}
		if decided() != before+1 {
			t.Fatal("a fresh lease with admissions left was not used")
		}
		// Wait until Redis's clock has left the bucket.
		for {
			now, err := rdb.Time(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			if now.UnixMicro()/width > bucket {
				break
			}
			time.Sleep(time.Millisecond)
		}
		before = decided()
		if _, err := l.Allow(ctx, rule, key); err != nil {
			t.Fatal(err)
		}
		if decided() != before {
			t.Fatalf("a request after Redis left bucket %d was decided from the lease counted in it", bucket)
		}
	}
}

// TestAnEndedLeaseGivesItsUnusedAdmissionsBack checks that the admissions a
// lease left unused stop counting once the process next asks Redis about the
// key: another process then sees exactly the admissions made, plus what the
// first holds in its new lease.
func TestAnEndedLeaseGivesItsUnusedAdmissionsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prefix := testPrefix(t)
	rdb := redisClient(t)
	a, err := NewRedis(rdb, RedisOptions{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewRedis(redisClient(t), RedisOptions{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	rule := Rule{Name: "back", Limit: 1000, Window: 10 * time.Second} // buckets of 1s
	width := geometryOf(rule.Window, DefaultBuckets).width
	key := a.Key(rule.Name, "k")
	lease := func() (tokens int, bucket int64) {
		a.leases.mu.Lock()
		defer a.leases.mu.Unlock()
		e := a.leases.m[key]
		return e.tokens, e.bucket
	}
	made := 0
	for made < 10 {
		if d, err := a.Allow(ctx, rule, "k"); err != nil || !d.Allowed {
			t.Fatalf("%+v %v", d, err)
		}
		made++
	}
	unused, bucket := lease()
	if unused < 10 {
		t.Fatalf("the busy key's lease has %d admissions left; want a lease with many unused", unused)
	}
	for { // until Redis's clock has left the lease's bucket
		now, err := rdb.Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if now.UnixMicro()/width > bucket {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d, err := a.Allow(ctx, rule, "k"); err != nil || !d.Allowed {
		t.Fatalf("%+v %v", d, err)
	}
	made++
	held, _ := lease()
	d, err := b.Allow(ctx, rule, "k")
	if err != nil || !d.Allowed {
		t.Fatalf("%+v %v", d, err)
	}
	made++
	if want := rule.Limit - made - held; d.Remaining != want {
		t.Fatalf("remaining %d after %d admissions with %d leased; want %d (the %d unused given back)",
			d.Remaining, made, held, want, unused)
	}
}

// TestNoLeasesDecidesEveryRequestInRedis checks that with NoLeases a busy
// key still costs a round trip per request and counts only what it admits.
func TestNoLeasesDecidesEveryRequestInRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hook := &roundTrips{}
	rdb := redisClient(t)
	rdb.AddHook(hook)
	l, err := NewRedis(rdb, RedisOptions{Prefix: testPrefix(t), NoLeases: true})
	if err != nil {
		t.Fatal(err)
	}
	rule := Rule{Name: "exact", Limit: 1000, Window: time.Hour}
	for i := range 50 {
		d, err := l.Allow(ctx, rule, "k")
		if err != nil || !d.Allowed || d.Remaining != rule.Limit-1-i {
			t.Fatalf("request %d: %+v %v", i+1, d, err)
		}
	}
	if n := hook.n.Load(); n < 50 {
		t.Fatalf("50 requests in %d round trips: some were decided without Redis", n)
	}
	raw, err := rdb.Get(ctx, l.Key(rule.Name, "k")).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0
	for i := 6; i+1 < len(raw); i += 2 {
		sum += int(raw[i])<<8 | int(raw[i+1])
	}
	if sum != 50 {
		t.Fatalf("Redis counts %d admissions, want 50", sum)
	}
}

// TestALeaseDecisionDoesNotEndAnOutage checks that while Redis is down, a
// probe that leases alone decide does not declare Redis restored.
func TestALeaseDecisionDoesNotEndAnOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := startPrivateRedis(t)
	log, _ := testLogger()
	rdb := redis.NewClient(&redis.Options{Addr: srv.addr(), DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	shared, err := NewRedis(rdb, RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := NewResilient(shared, NewLocal(), ResilientOptions{Backoff: 20 * time.Millisecond, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	busy := Rule{Name: "busy", Limit: 10000, Window: time.Hour}
	for range 20 { // a lease on the busy key, lasting its bucket (6 minutes)
		if _, err := res.Allow(ctx, busy, "k"); err != nil {
			t.Fatal(err)
		}
	}
	srv.stop()
	if _, err := res.Allow(ctx, busy, "other"); err != nil || !res.Degraded() {
		t.Fatalf("a request Redis had to decide while it was down: err %v, degraded %v", err, res.Degraded())
	}
	time.Sleep(50 * time.Millisecond) // past the backoff: the next call probes
	decided := func() int64 {
		shared.leases.mu.Lock()
		defer shared.leases.mu.Unlock()
		return shared.leases.decided
	}
	before := decided()
	if d, err := res.Allow(ctx, busy, "k"); err != nil || !d.Allowed {
		t.Fatalf("%+v %v", d, err)
	}
	if decided() != before+1 {
		t.Fatal("the probe was not decided from the lease: this test then proves nothing")
	}
	if !res.Degraded() {
		t.Fatal("a decision from a lease ended the outage while Redis was down")
	}
}

// TestALateAnswerKeepsTheNewerLease checks that the answer to a request
// sent before a newer lease was granted, arriving after it, neither drops
// that lease nor loses what it leased itself: it is kept to be given back.
func TestALateAnswerKeepsTheNewerLease(t *testing.T) {
	t.Parallel()
	ls := &leases{m: map[string]*lease{}}
	rule := Rule{Name: "r", Limit: 60000, Window: time.Second}
	width := geometryOf(rule.Window, DefaultBuckets).width
	reqs := []Request{{Rule: rule, Key: "k"}}
	keys, widths := []string{"r:k"}, []int64{width}
	now := time.Now()
	grant := func(granted int, bucket int64) {
		out := []Decision{{Rule: "r", Allowed: true, Limit: rule.Limit, Remaining: 50000}}
		ls.settle(keys, reqs, widths, []*lease{nil}, []ask{{demand: 1}}, []int{granted}, []int64{bucket}, true, now,
			bucket*width+width/2, out)
	}
	grant(500, 11) // the newer lease
	grant(1, 10)   // a plain decision of the bucket before, answered late
	grant(40, 10)  // a lease of the bucket before, answered late
	e := ls.m["r:k"]
	if e.bucket != 11 || e.tokens != 499 {
		t.Fatalf("lease of bucket %d with %d admissions left; want bucket 11 with 499", e.bucket, e.tokens)
	}
	if e.back != 10 || e.unused != 39 {
		t.Fatalf("to give back: %d of bucket %d; want the late lease's 39 of bucket 10", e.unused, e.back)
	}
	// The next bucket: one give-back waits at a time, so the 499 left of
	// bucket 11 stay counted until that bucket leaves the window.
	grant(300, 12)
	if e := ls.m["r:k"]; e.bucket != 12 || e.tokens != 299 || e.back != 10 || e.unused != 39 {
		t.Fatalf("after a newer grant: %+v", *e)
	}
}
