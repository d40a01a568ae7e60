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

// roundTrips counts commands and pipelines sent to Redis.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// TestConcurrentCallersShareRoundTripsAndAdmitExactlyTheLimit checks that
// decisions asked for at once go to Redis in shared script calls and that
// batching loses no count: of 64 callers × 25 requests against one key with
// a limit of 1,000, exactly 1,000 are admitted, each caller gets its own
// answer, and a script Redis has not loaded yet (NOSCRIPT) is
// loaded on the way.
func TestConcurrentCallersShareRoundTripsAndAdmitExactlyTheLimit(t *testing.T) {
	rdb := redisClient(t)
	hook := &roundTrips{}
	rdb.AddHook(hook)
	ctx := context.Background()
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r, err := NewRedis(rdb, RedisOptions{Prefix: testPrefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	rule := Rule{Name: "burst", Limit: 1000, Window: time.Minute}
	other := Rule{Name: "other", Limit: 5, Window: time.Minute}
	const callers, each = 64, 25
	var admitted, otherAdmitted atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for c := range callers {
		wg.Go(func() {
			<-start
			for range each {
				d, err := r.Allow(ctx, rule, "shared")
				if err != nil {
					t.Error(err)
					return
				}
				if d.Rule != "burst" {
					t.Errorf("a caller got the decision of rule %q", d.Rule)
				}
				if d.Allowed {
					admitted.Add(1)
				}
			}
			if c%8 == 0 { // a second rule in the same batches, on keys of its own
				d, err := r.Allow(ctx, other, "o")
				if err != nil || d.Rule != "other" || d.Limit != 5 {
					t.Errorf("other rule: %+v %v", d, err)
				}
				if d.Allowed {
					otherAdmitted.Add(1)
				}
			}
		})
	}
	before := hook.n.Load()
	close(start)
	wg.Wait()
	if got := admitted.Load(); got != int64(rule.Limit) {
		t.Fatalf("admitted %d of %d requests, want exactly the limit %d", got, callers*each, rule.Limit)
	}
	if got := otherAdmitted.Load(); got != 5 {
		t.Fatalf("other rule admitted %d of 8, want 5", got)
	}
	trips := hook.n.Load() - before
	decisions := int64(callers*each + callers/8)
	t.Logf("%d decisions in %d round trips", decisions, trips)
	if trips >= decisions {
		t.Fatalf("%d round trips for %d concurrent decisions: none were shared", trips, decisions)
	}
}

// TestCancelledCallerLeavesTheQueue checks that a caller whose context ends
// while it waits for a batch returns at once with the context's error and
// that the others still get their answers.
func TestCancelledCallerLeavesTheQueue(t *testing.T) {
	rdb := redisClient(t)
	r, err := NewRedis(rdb, RedisOptions{Prefix: testPrefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	rule := Rule{Name: "c", Limit: 1000, Window: time.Minute}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			ctx := context.Background()
			if i%2 == 0 {
				ctx = cancelled
			}
			_, err := r.Allow(ctx, rule, "k")
			if i%2 == 1 && err != nil {
				t.Errorf("caller %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	d, err := r.Allow(context.Background(), rule, "k")
	if err != nil || !d.Allowed {
		t.Fatalf("after the burst: %+v %v", d, err)
	}
}

// TestABatchCountsARefusedRequestAgainstNoneOfItsRules checks that requests
// decided in one batch that share a key (one address, several users) count
// against it only when admitted: 32 callers send 10 requests each under one
// address rule (limit 1,000) and one of 4 users (limit 3 each), so exactly
// 12 are admitted and the address key holds 12, not 320.
func TestABatchCountsARefusedRequestAgainstNoneOfItsRules(t *testing.T) {
	rdb := redisClient(t)
	r, err := NewRedis(rdb, RedisOptions{Prefix: testPrefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	ip := Rule{Name: "ip", Limit: 1000, Window: time.Minute}
	user := Rule{Name: "user", Limit: 3, Window: time.Minute}
	ctx := context.Background()
	var admitted atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for c := range 32 {
		wg.Go(func() {
			<-start
			for range 10 {
				ds, err := r.AllowAll(ctx, []Request{{Rule: ip, Key: "203.0.113.7"}, {Rule: user, Key: fmt.Sprint("u", c%4)}})
				if err != nil {
					t.Error(err)
					return
				}
				if ds[0].Allowed != ds[1].Allowed || ds[0].Rule != "ip" || ds[1].Rule != "user" {
					t.Errorf("decisions of one request disagree or are out of order: %+v", ds)
				}
				if ds[0].Allowed {
					admitted.Add(1)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if got := admitted.Load(); got != 12 {
		t.Fatalf("admitted %d, want 12 (3 for each of 4 users)", got)
	}
	d, err := r.Allow(ctx, ip, "203.0.113.7")
	if err != nil {
		t.Fatal(err)
	}
	if want := 1000 - 12 - 1; d.Remaining != want {
		t.Fatalf("address rule has %d remaining after 12 admissions and this one, want %d", d.Remaining, want)
	}
}
