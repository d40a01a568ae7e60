package auth

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RevokedChannel is the Redis pub/sub channel every revocation is announced
// on (the message is the token id).
const RevokedChannel = "revoked:access"

// watchedMax bounds the tokens a Watched remembers; past it, it forgets them
// all and asks Redis again.
const watchedMax = 100_000

// watchedStale bounds how long a "not revoked" answer is reused, whatever
// happens to the subscription.
const watchedStale = 30 * time.Second

// Watched is Revocations that remembers, in this process, the answer for
// each token it has checked, and learns of every later revocation from
// Redis pub/sub, so a busy token costs no round trip. While the subscription
// is down it remembers nothing and asks Redis every time; when it comes back
// it starts afresh. Safe for concurrent use.
type Watched struct {
	rdb  *redis.Client
	log  *slog.Logger
	live atomic.Bool

	mu    sync.Mutex
	known map[string]watchedEntry
}

type watchedEntry struct {
	revoked bool
	at      time.Time
}

// WatchRevocations returns Watched Revocations on rdb. The subscription runs
// until rdb is closed.
func WatchRevocations(rdb *redis.Client, log *slog.Logger) *Watched {
	if rdb == nil || log == nil {
		panic("auth: WatchRevocations needs a Redis client and a logger")
	}
	w := &Watched{rdb: rdb, log: log, known: map[string]watchedEntry{}}
	go w.watch()
	return w
}

func (w *Watched) watch() {
	ctx := context.Background()
	ps := w.rdb.Subscribe(ctx, RevokedChannel)
	defer ps.Close()
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			// The client was closed (the process is stopping): go quietly.
			// Were it a lost connection instead, Revoked would still answer
			// correctly from Redis, only slower.
			closed := errors.Is(err, redis.ErrClosed) || errors.Is(err, net.ErrClosed)
			if w.live.Swap(false) {
				w.forget()
				if !closed {
					w.log.Warn("revocation watch lost; checking every token in Redis until it is back", "err", err)
				}
			}
			if closed {
				return
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				w.forget() // revocations made while it was down are in Redis, not here
				w.live.Store(true)
			}
		case *redis.Message:
			w.remember(m.Payload, true, true)
		}
	}
}

// Live reports whether the subscription is up, so answers come from memory.
func (w *Watched) Live() bool { return w.live.Load() }

func (w *Watched) forget() {
	w.mu.Lock()
	w.known = map[string]watchedEntry{}
	w.mu.Unlock()
}

// remember records an answer; a "not revoked" never overwrites a revocation
// learnt in the meantime.
func (w *Watched) remember(id string, revoked, force bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.known) >= watchedMax {
		w.known = map[string]watchedEntry{}
	}
	if old, ok := w.known[id]; ok && old.revoked && !force {
		return
	}
	w.known[id] = watchedEntry{revoked: revoked, at: time.Now()}
}

// Revoked answers from memory while the subscription is live, from Redis
// otherwise.
func (w *Watched) Revoked(ctx context.Context, tokenID string) (bool, error) {
	if w.live.Load() {
		w.mu.Lock()
		e, ok := w.known[tokenID]
		w.mu.Unlock()
		if ok && (e.revoked || time.Since(e.at) < watchedStale) {
			return e.revoked, nil
		}
	}
	live := w.live.Load()
	revoked, err := redisRevocations{rdb: w.rdb}.Revoked(ctx, tokenID)
	if err == nil && live {
		w.remember(tokenID, revoked, false)
	}
	return revoked, err
}

// Revoke records the revocation in Redis and announces it.
func (w *Watched) Revoke(ctx context.Context, tokenID string, until time.Time) error {
	if err := (redisRevocations{rdb: w.rdb}).Revoke(ctx, tokenID, until); err != nil {
		return err
	}
	w.remember(tokenID, true, true)
	return nil
}
