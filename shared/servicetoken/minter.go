package servicetoken

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"
)

// Defaults of MinterOptions.
const (
	DefaultKeyPrefix    = "svctoken:"
	DefaultRedisTimeout = 300 * time.Millisecond
	// signLock is how long one process holds the right to sign a token for a
	// (caller, audience) pair; others wait that long for its token at most.
	signLock = 2 * time.Second
)

// MinterOptions tunes a Minter. Redis and Log are required.
type MinterOptions struct {
	// Redis shares minted tokens between processes.
	Redis redis.Cmdable
	// Log receives a warning when Redis cannot be used.
	Log *slog.Logger
	// KeyPrefix prefixes the Redis keys (default DefaultKeyPrefix). A token is
	// kept under <prefix><caller>:<audience>:<key id>.
	KeyPrefix string
	// RedisTimeout bounds each Redis command (default DefaultRedisTimeout).
	RedisTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Minter hands out the service tokens of one calling context. While Redis is
// reachable, one token per audience is signed per CacheFor across all
// processes sharing that Redis: a token is kept in process and in Redis until
// CacheFor after it was signed, concurrent callers in a process wait for one
// fetch, and processes elect one signer with SET NX on a short lock (a waiter
// whose signer vanished signs itself and publishes with SET NX, taking the
// winner's token if it loses). Redis being unreachable never fails Token: the
// Minter then signs locally, logs a warning and keeps the token in process.
// It is safe for concurrent use.
type Minter struct {
	caller   string
	key      ed25519.PrivateKey
	rdb      redis.Cmdable
	log      *slog.Logger
	prefix   string
	rtimeout time.Duration
	now      func() time.Time
	kid      string
	lockFor  time.Duration

	mu       sync.RWMutex
	cache    map[string]cached
	inflight map[string]*flight

	signed atomic.Int64
	holder string // value of the sign lock, unique per Minter
}

type cached struct {
	token string
	until time.Time // iat + CacheFor
}

type flight struct {
	done chan struct{}
	c    cached
	err  error
}

// NewMinter returns the Minter of context caller, signing with priv. It
// panics when caller is not a known context, priv is not an Ed25519 private
// key, or Redis or Log is missing: all are wiring mistakes.
func NewMinter(caller string, priv ed25519.PrivateKey, opt MinterOptions) *Minter {
	if !KnownContext(caller) {
		panic(fmt.Sprintf("servicetoken: NewMinter: %q is not a known context", caller))
	}
	if len(priv) != ed25519.PrivateKeySize {
		panic("servicetoken: NewMinter needs an Ed25519 private key")
	}
	if opt.Redis == nil || opt.Log == nil {
		panic("servicetoken: NewMinter needs Redis and a logger")
	}
	if opt.KeyPrefix == "" {
		opt.KeyPrefix = DefaultKeyPrefix
	}
	if opt.RedisTimeout <= 0 {
		opt.RedisTimeout = DefaultRedisTimeout
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	holder, err := newTokenID()
	if err != nil {
		panic(err)
	}
	return &Minter{
		caller:   caller,
		key:      priv,
		rdb:      opt.Redis,
		log:      opt.Log,
		prefix:   opt.KeyPrefix + caller + ":",
		rtimeout: opt.RedisTimeout,
		now:      opt.Now,
		kid:      keyID(priv.Public().(ed25519.PublicKey)),
		lockFor:  signLock,
		cache:    map[string]cached{},
		inflight: map[string]*flight{},
		holder:   holder,
	}
}

// Caller returns the context this Minter speaks for.
func (m *Minter) Caller() string { return m.caller }

// Signings returns how many tokens this Minter has signed.
func (m *Minter) Signings() int64 { return m.signed.Load() }

// Token returns a service token from m's context to audience, valid for at
// least TTL−CacheFor. It fails only when audience is not a known context, ctx
// ends first, or signing itself fails.
func (m *Minter) Token(ctx context.Context, audience string) (string, error) {
	now := m.now()
	m.mu.RLock()
	c, ok := m.cache[audience]
	m.mu.RUnlock()
	if ok && now.Before(c.until) {
		return c.token, nil
	}
	if !KnownContext(audience) {
		return "", fmt.Errorf("servicetoken: audience %q is not a known context", audience)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("servicetoken: token for %s: %w", audience, err)
	}

	m.mu.Lock()
	if c, ok := m.cache[audience]; ok && now.Before(c.until) {
		m.mu.Unlock()
		return c.token, nil
	}
	f, ok := m.inflight[audience]
	if !ok {
		f = &flight{done: make(chan struct{})}
		m.inflight[audience] = f
		// The fetch outlives a caller that gives up: the others still want it.
		go m.run(context.WithoutCancel(ctx), audience, f)
	}
	m.mu.Unlock()

	select {
	case <-f.done:
		if f.err != nil {
			return "", f.err
		}
		return f.c.token, nil
	case <-ctx.Done():
		return "", fmt.Errorf("servicetoken: token for %s: %w", audience, ctx.Err())
	}
}

func (m *Minter) run(ctx context.Context, audience string, f *flight) {
	f.c, f.err = m.fetch(ctx, audience)
	m.mu.Lock()
	if f.err == nil {
		m.cache[audience] = f.c
	}
	delete(m.inflight, audience)
	m.mu.Unlock()
	close(f.done)
}

// fetch finds the shared token for audience in Redis or becomes the one
// process that signs it. Any Redis failure ends in a local signing.
func (m *Minter) fetch(ctx context.Context, audience string) (cached, error) {
	key := m.prefix + audience + ":" + m.kid
	c, err := m.read(ctx, key, audience)
	switch {
	case err == nil:
		return c, nil
	case !errors.Is(err, redis.Nil):
		return m.signLocally(ctx, audience, err)
	}

	won, err := m.setNX(ctx, key+":lock", m.holder, m.lockFor)
	if err != nil {
		return m.signLocally(ctx, audience, err)
	}
	if won {
		// The previous holder may have published its token and released
		// the lock between our read and our lock: look again first.
		if c, err := m.read(ctx, key, audience); err == nil {
			_ = m.do(ctx, func(ctx context.Context) error { return m.rdb.Del(ctx, key+":lock").Err() })
			return c, nil
		}
		c, err := m.sign(audience)
		if err != nil {
			return cached{}, err
		}
		// Plain SET: what is there, if anything, is a token this process
		// found unusable.
		err = m.do(ctx, func(ctx context.Context) error {
			_, err := m.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, c.token, c.until.Sub(m.now()))
				p.Del(ctx, key+":lock")
				return nil
			})
			return err
		})
		if err != nil {
			m.log.WarnContext(ctx, "service token not shared: redis unavailable", "caller", m.caller, "audience", audience, "err", err)
		}
		return c, nil
	}

	// Another process is signing: wait for its token.
	deadline := m.now().Add(m.lockFor)
	for wait := 2 * time.Millisecond; m.now().Before(deadline); wait = min(2*wait, 50*time.Millisecond) {
		time.Sleep(wait)
		c, err := m.read(ctx, key, audience)
		switch {
		case err == nil:
			return c, nil
		case !errors.Is(err, redis.Nil):
			return m.signLocally(ctx, audience, err)
		}
	}

	// The signer vanished. Sign and publish unless someone else did first;
	// then use the winner's token.
	c, err = m.sign(audience)
	if err != nil {
		return cached{}, err
	}
	won, err = m.setNX(ctx, key, c.token, c.until.Sub(m.now()))
	if err == nil && !won {
		if theirs, err := m.read(ctx, key, audience); err == nil {
			return theirs, nil
		}
	}
	return c, nil
}

// read returns the usable token under key, or redis.Nil when there is none
// (or only one this process must not reuse).
func (m *Minter) read(ctx context.Context, key, audience string) (cached, error) {
	var tok string
	err := m.do(ctx, func(ctx context.Context) error {
		var err error
		tok, err = m.rdb.Get(ctx, key).Result()
		return err
	})
	if err != nil {
		return cached{}, err
	}
	u, err := peek(tok)
	if err != nil || u.Typ != TokenType || u.Iss != m.caller || len(u.Aud) != 1 || u.Aud[0] != audience || u.Iat == nil {
		return cached{}, redis.Nil
	}
	c := cached{token: tok, until: u.Iat.Add(CacheFor)}
	if !m.now().Before(c.until) {
		return cached{}, redis.Nil
	}
	return c, nil
}

func (m *Minter) setNX(ctx context.Context, key, val string, ttl time.Duration) (bool, error) {
	var won bool
	err := m.do(ctx, func(ctx context.Context) error {
		var err error
		won, err = m.rdb.SetNX(ctx, key, val, ttl).Result()
		return err
	})
	return won, err
}

func (m *Minter) do(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, m.rtimeout)
	defer cancel()
	return fn(ctx)
}

func (m *Minter) signLocally(ctx context.Context, audience string, cause error) (cached, error) {
	m.log.WarnContext(ctx, "redis unavailable: service token signed locally", "caller", m.caller, "audience", audience, "err", cause)
	return m.sign(audience)
}

// sign makes a fresh token from m's context to audience.
func (m *Minter) sign(audience string) (cached, error) {
	jti, err := newTokenID()
	if err != nil {
		return cached{}, err
	}
	now := m.now().Truncate(time.Second)
	c := claims{
		Typ: TokenType,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    m.caller,
			Subject:   SubjectPrefix + m.caller,
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(TTL)),
			ID:        jti,
		},
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(m.key)
	if err != nil {
		return cached{}, fmt.Errorf("servicetoken: sign token %s→%s: %w", m.caller, audience, err)
	}
	m.signed.Add(1)
	return cached{token: tok, until: now.Add(CacheFor)}, nil
}
