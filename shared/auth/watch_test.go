package auth_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/logging"
)

// countCommands counts the commands a client sends.
type countCommands struct{ n atomic.Int64 }

func (c *countCommands) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *countCommands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *countCommands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A watched verifier answers a token it has checked from memory, and still
// refuses it at once when another process revokes it.
func TestWatchedRevocationsRememberAndLearnOfRevocationsElsewhere(t *testing.T) {
	t.Parallel()
	rdb := redisClient(t)
	counter := &countCommands{}
	rdb.AddHook(counter)
	w := auth.WatchRevocations(rdb, logging.Discard())
	elsewhere := auth.NewRedisRevocations(redisClient(t)) // another process's logout
	ctx := context.Background()
	id := "watched-" + time.Now().Format("150405.000000000")

	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Once the subscription is up, the first check asks Redis, the next ones
	// do not.
	eventually("the first answer was never remembered", func() bool {
		if _, err := w.Revoked(ctx, id); err != nil {
			t.Fatal(err)
		}
		before := counter.n.Load()
		revoked, err := w.Revoked(ctx, id)
		return err == nil && !revoked && counter.n.Load() == before
	})
	if err := elsewhere.Revoke(ctx, id, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	eventually("a revocation made elsewhere was not learnt", func() bool {
		revoked, err := w.Revoked(ctx, id)
		return err == nil && revoked
	})
}
