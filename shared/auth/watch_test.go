package auth_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
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
	rdb := dbtest.Redis(t)
	counter := &countCommands{}
	rdb.AddHook(counter)
	w := auth.WatchRevocations(rdb, logging.Discard())
	elsewhere := auth.NewRedisRevocations(dbtest.Redis(t)) // another process's logout
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

// Closing the Redis client is how a process stops; the watch then ends
// without warning that it lost its subscription.
func TestWatchedRevocationsEndQuietlyWhenTheClientCloses(t *testing.T) {
	t.Parallel()
	rdb := dbtest.Redis(t)
	var logs bytes.Buffer
	var mu sync.Mutex
	w := auth.WatchRevocations(rdb, slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, nil)))
	ctx := context.Background()
	deadline := time.Now().Add(3 * time.Second)
	for { // wait for the subscription: a second check is answered from memory
		if _, err := w.Revoked(ctx, "quiet"); err != nil {
			t.Fatal(err)
		}
		if w.Live() || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !w.Live() {
		t.Fatal("the subscription never came up")
	}
	if err := rdb.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the watch notices the close at once
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(logs.String(), "lost") {
		t.Fatalf("closing the client logged a warning: %s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
