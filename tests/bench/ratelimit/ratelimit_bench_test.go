// Package ratelimit compares the platform's sliding-window limiter with
// go-redis/redis_rate (GCRA) and with a bare one-round-trip script, on the
// same Redis in the same run. It is the only package that imports redis_rate.
//
//	REDIS_URL=redis://127.0.0.1:6379/0 go test -run '^$' -bench . ./tests/bench/ratelimit
//
// Figures per sub-benchmark: decisions/s, p50_µs and p99_µs of one decision
// from 1, 16 and 64 concurrent callers, and roundtrips/decision counted by a
// go-redis hook; ring is the limiter as the platform runs it (busy keys
// decided from leases), ring_no_leases the same with every decision in
// Redis; then, per caller count, each ring's throughput divided by
// redis_rate's and by the bare script's; BenchmarkMemoryPerKey prints Redis MEMORY USAGE of one
// limited key for each algorithm.
package ratelimit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/shared/db/dbtest"
	"github.com/cloudphone/cloudphone/shared/ratelimit"
)

const keys = 10_000

// countHook counts commands and pipelines sent to Redis: each is one round
// trip.
type countHook struct{ n atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

func client(b *testing.B) (*redis.Client, *countHook) {
	b.Helper()
	rdb := dbtest.Redis(b, func(o *redis.Options) { o.PoolSize = 128 })
	h := &countHook{}
	rdb.AddHook(h)
	return rdb, h
}

// trivial is the floor: one EVALSHA of a script doing one INCR.
var trivial = redis.NewScript(`return redis.call('INCR', KEYS[1])`)

type decide func(ctx context.Context, key string) error

// run spreads b.N decisions over callers goroutines and reports throughput,
// latency percentiles and round trips per decision; it returns the
// throughput.
func run(b *testing.B, callers int, hook *countHook, fn decide) float64 {
	ctx := context.Background()
	for i := range 200 { // warm the pool and load the script
		if err := fn(ctx, fmt.Sprint("warm", i%callers)); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([][]time.Duration, callers)
	var next atomic.Int64
	before := hook.n.Load()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			mine := make([]time.Duration, 0, b.N/callers+1)
			for next.Add(1) <= int64(b.N) {
				key := fmt.Sprint("k", rng.IntN(keys))
				t0 := time.Now()
				if err := fn(ctx, key); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			lat[c] = mine
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	trips := hook.n.Load() - before
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return 0
	}
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "decisions/s")
	b.ReportMetric(pct(0.50), "p50_µs")
	b.ReportMetric(pct(0.99), "p99_µs")
	b.ReportMetric(float64(trips)/float64(len(all)), "roundtrips/decision")
	return float64(len(all)) / elapsed.Seconds()
}

// BenchmarkDecision runs each algorithm at 1, 16 and 64 concurrent callers.
// The limits are high enough that almost every decision admits, which is the
// path that writes.
func BenchmarkDecision(b *testing.B) {
	rdb, hook := client(b)
	prefix := fmt.Sprintf("bench:%d:", time.Now().UnixNano())
	ring, err := ratelimit.NewRedis(rdb, ratelimit.RedisOptions{Prefix: prefix + "ring:"})
	if err != nil {
		b.Fatal(err)
	}
	exact, err := ratelimit.NewRedis(rdb, ratelimit.RedisOptions{Prefix: prefix + "exact:", NoLeases: true})
	if err != nil {
		b.Fatal(err)
	}
	rule := ratelimit.Rule{Name: "bench", Limit: 60000, Window: time.Minute}
	gcra := redis_rate.NewLimiter(rdb)
	gcraLimit := redis_rate.PerMinute(60000)
	local := ratelimit.NewLocal()
	b.Cleanup(func() { cleanup(rdb, prefix) })

	algos := []struct {
		name string
		fn   decide
	}{
		{"ring", func(ctx context.Context, key string) error {
			_, err := ring.Allow(ctx, rule, key)
			return err
		}},
		{"ring_no_leases", func(ctx context.Context, key string) error {
			_, err := exact.Allow(ctx, rule, key)
			return err
		}},
		{"redis_rate", func(ctx context.Context, key string) error {
			_, err := gcra.Allow(ctx, prefix+"gcra:"+key, gcraLimit)
			return err
		}},
		{"trivial_incr_script", func(ctx context.Context, key string) error {
			return trivial.Run(ctx, rdb, []string{prefix + "incr:" + key}).Err()
		}},
		{"local", func(ctx context.Context, key string) error {
			_, err := local.Allow(ctx, rule, key)
			return err
		}},
	}
	for _, callers := range []int{1, 16, 64} {
		rate := map[string]float64{}
		for _, a := range algos {
			b.Run(fmt.Sprintf("%s/callers=%d", a.name, callers), func(b *testing.B) {
				rate[a.name] = run(b, callers, hook, a.fn)
			})
		}
		// The ring's throughput against the others' in the same run.
		b.Run(fmt.Sprintf("ratio/callers=%d", callers), func(b *testing.B) {
			for range b.N {
			}
			b.ReportMetric(rate["ring"]/rate["redis_rate"], "ring_per_redis_rate")
			b.ReportMetric(rate["ring"]/rate["trivial_incr_script"], "ring_per_trivial")
			b.ReportMetric(rate["ring_no_leases"]/rate["redis_rate"], "no_leases_per_redis_rate")
			b.ReportMetric(rate["ring_no_leases"]/rate["trivial_incr_script"], "no_leases_per_trivial")
		})
	}
}

// BenchmarkMemoryPerKey reports Redis MEMORY USAGE of one limited key (with a
// key name of the same length) for the ring limiter and redis_rate, and the
// ring key's TTL.
func BenchmarkMemoryPerKey(b *testing.B) {
	rdb, _ := client(b)
	ctx := context.Background()
	prefix := fmt.Sprintf("bm:%d:", time.Now().UnixNano())
	b.Cleanup(func() { cleanup(rdb, prefix) })
	ring, err := ratelimit.NewRedis(rdb, ratelimit.RedisOptions{Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	gcra := redis_rate.NewLimiter(rdb)
	rule := ratelimit.Rule{Name: "ip", Limit: 120, Window: time.Minute}
	client := "203.0.113.7"
	for range 7 {
		if _, err := ring.Allow(ctx, rule, client); err != nil {
			b.Fatal(err)
		}
		if _, err := gcra.Allow(ctx, prefix+"gc:"+client, redis_rate.PerMinute(120)); err != nil {
			b.Fatal(err)
		}
	}
	ringKey := ring.Key("ip", client)
	gcraKey := "rate:" + prefix + "gc:" + client // redis_rate prefixes "rate:"
	if len(ringKey) != len(gcraKey) {
		gcraKey = ""
	}
	ringMem, err := rdb.MemoryUsage(ctx, ringKey).Result()
	if err != nil {
		b.Fatal(err)
	}
	ttl, _ := rdb.PTTL(ctx, ringKey).Result()
	var gcraMem int64
	if gcraKey != "" {
		gcraMem, _ = rdb.MemoryUsage(ctx, gcraKey).Result()
	} else {
		gcraMem, _ = rdb.MemoryUsage(ctx, "rate:"+prefix+"gc:"+client).Result()
	}
	for range b.N {
		_ = ringMem
	}
	b.ReportMetric(float64(ringMem), "ring_B/key")
	b.ReportMetric(float64(gcraMem), "redis_rate_B/key")
	b.ReportMetric(float64(len(ringKey)), "ring_keyname_B")
	b.ReportMetric(ttl.Seconds(), "ring_idle_ttl_s")
}

func cleanup(rdb *redis.Client, prefix string) {
	ctx := context.Background()
	for _, p := range []string{prefix + "*", "rate:" + prefix + "*"} {
		iter := rdb.Scan(ctx, 0, p, 1000).Iterator()
		var batch []string
		for iter.Next(ctx) {
			batch = append(batch, iter.Val())
			if len(batch) == 1000 {
				rdb.Unlink(ctx, batch...)
				batch = batch[:0]
			}
		}
		if len(batch) > 0 {
			rdb.Unlink(ctx, batch...)
		}
	}
}
