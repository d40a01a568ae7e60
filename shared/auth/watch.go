package auth

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RevokedChannel is the Redis pub/sub channel every revocation is announced
// on: the token id, or "u:<user id>:<ms>" / "s:<session id>:<ms>" for the
// cutoff of a user or session.
const RevokedChannel = "revoked:access"

// watchedMax bounds the answers a Watched remembers; past it, it forgets them
// all and asks Redis again.
const watchedMax = 100_000

// watchedStale bounds how long an answer that refuses nothing is reused,
// whatever happens to the subscription.
const watchedStale = 30 * time.Second

// Watched is Revocations that remembers, in this process, what Redis said of
// each token, user and session it has checked, and learns of every later
// revocation from Redis pub/sub, so a busy token costs no round trip. While
// the subscription is down it remembers nothing and asks Redis every time;
// when it comes back it starts afresh. Safe for concurrent use.
type Watched struct {
	redisRevocations
	log  *slog.Logger
	live atomic.Bool

	mu    sync.RWMutex
	known map[watchedKey]watchedEntry
}

// watchedKey names what an answer is about: a token ('t', its jti), a user
// ('u') or a session ('s').
type watchedKey struct {
	kind byte
	id   string
}

// watchedEntry is one remembered answer: a token revoked (cutoff 1) or not
// (0), or the cutoff in Unix ms of a user or session (0 for none).
type watchedEntry struct {
	cutoff int64
	at     time.Time
}

// WatchRevocations returns Watched Revocations on rdb. The subscription runs
// until rdb is closed.
func WatchRevocations(rdb *redis.Client, log *slog.Logger) *Watched {
	if rdb == nil || log == nil {
		panic("auth: WatchRevocations needs a Redis client and a logger")
	}
	w := &Watched{redisRevocations: redisRevocations{rdb: rdb}, log: log, known: map[watchedKey]watchedEntry{}}
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
			// Were it a lost connection instead, Refused would still answer
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
			w.learn(m.Payload)
		}
	}
}

// learn records an announcement: a bare token id, or "<kind>:<id>:<ms>".
func (w *Watched) learn(payload string) {
	kind, rest, ok := strings.Cut(payload, ":")
	if !ok {
		w.remember(watchedKey{'t', payload}, 1)
		return
	}
	if len(kind) != 1 {
		return
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return
	}
	at, err := strconv.ParseInt(rest[i+1:], 10, 64)
	if err != nil {
		return
	}
	w.remember(watchedKey{kind[0], rest[:i]}, at)
}

// Live reports whether the subscription is up, so answers come from memory.
func (w *Watched) Live() bool { return w.live.Load() }

func (w *Watched) forget() {
	w.mu.Lock()
	w.known = map[watchedKey]watchedEntry{}
	w.mu.Unlock()
}

// remember records an answer; a cutoff never moves back (an older answer
// read from Redis cannot undo a revocation learnt in the meantime).
func (w *Watched) remember(key watchedKey, cutoff int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.known) >= watchedMax {
		w.known = map[watchedKey]watchedEntry{}
	}
	if old, ok := w.known[key]; ok && old.cutoff > cutoff {
		cutoff = old.cutoff
	}
	w.known[key] = watchedEntry{cutoff: cutoff, at: time.Now()}
}

// recall returns a remembered answer that may still be used: a revocation
// always, an answer that refuses nothing for watchedStale.
func (w *Watched) recall(key watchedKey, now time.Time) (int64, bool) {
	e, ok := w.known[key]
	if !ok || (e.cutoff == 0 && now.Sub(e.at) >= watchedStale) {
		return 0, false
	}
	return e.cutoff, true
}

// Refused answers from memory while the subscription is live and every part
// of the answer is known, from Redis (one round trip) otherwise.
func (w *Watched) Refused(ctx context.Context, p Principal) (bool, error) {
	live := w.live.Load()
	if live {
		now := time.Now()
		w.mu.RLock()
		token, okT := w.recall(watchedKey{'t', p.TokenID}, now)
		user, okU := w.recall(watchedKey{'u', p.UserID}, now)
		session, okS := int64(0), true
		if p.SessionID != "" {
			session, okS = w.recall(watchedKey{'s', p.SessionID}, now)
		}
		w.mu.RUnlock()
		if okT && okU && okS {
			return revocationState{token: token > 0, user: user, session: session}.refuses(p), nil
		}
	}
	st, err := w.lookup(ctx, p)
	if err != nil {
		return false, err
	}
	if live {
		var token int64
		if st.token {
			token = 1
		}
		w.remember(watchedKey{'t', p.TokenID}, token)
		w.remember(watchedKey{'u', p.UserID}, st.user)
		if p.SessionID != "" {
			w.remember(watchedKey{'s', p.SessionID}, st.session)
		}
	}
	return st.refuses(p), nil
}

// Revoked reports whether the token with id tokenID was revoked by itself.
func (w *Watched) Revoked(ctx context.Context, tokenID string) (bool, error) {
	if w.live.Load() {
		w.mu.RLock()
		cutoff, ok := w.recall(watchedKey{'t', tokenID}, time.Now())
		w.mu.RUnlock()
		if ok {
			return cutoff > 0, nil
		}
	}
	live := w.live.Load()
	revoked, err := w.redisRevocations.Revoked(ctx, tokenID)
	if err == nil && live {
		var c int64
		if revoked {
			c = 1
		}
		w.remember(watchedKey{'t', tokenID}, c)
	}
	return revoked, err
}

// Revoke records the revocation in Redis and announces it.
func (w *Watched) Revoke(ctx context.Context, tokenID string, until time.Time) error {
	if err := w.redisRevocations.Revoke(ctx, tokenID, until); err != nil {
		return err
	}
	w.remember(watchedKey{'t', tokenID}, 1)
	return nil
}

// EndUser records the user's cutoff in Redis and announces it.
func (w *Watched) EndUser(ctx context.Context, userID string, keep time.Duration) error {
	at, err := w.cut(ctx, RevokedUserKeyPrefix, cutoffUser, userID, keep)
	if err != nil {
		return err
	}
	w.remember(watchedKey{'u', userID}, at)
	return nil
}

// EndSession records the session's cutoff in Redis and announces it.
func (w *Watched) EndSession(ctx context.Context, sessionID string, keep time.Duration) error {
	at, err := w.cut(ctx, RevokedSessionKeyPrefix, cutoffSession, sessionID, keep)
	if err != nil {
		return err
	}
	w.remember(watchedKey{'s', sessionID}, at)
	return nil
}
