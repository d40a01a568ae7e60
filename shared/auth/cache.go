package auth

import (
	"sync"
	"time"
)

// cacheSize bounds the verified-token cache (tokens are under 1 KiB, so at
// most about 16 MiB); past it, the cache is emptied and refilled (tokens live
// 15 minutes, so a cold cache costs one parse each).
const cacheSize = 16384

// verifiedCache remembers tokens whose signature and claims were checked, until
// they expire, so a busy client pays the EdDSA verification once per token.
// Revocation is not cached: it is checked on every use. Safe for concurrent use.
type verifiedCache struct {
	mu sync.RWMutex
	m  map[string]Principal
}

func (c *verifiedCache) get(token string, now time.Time) (Principal, bool) {
	c.mu.RLock()
	p, ok := c.m[token]
	c.mu.RUnlock()
	if !ok || !now.Before(p.ExpiresAt.Add(Leeway)) {
		return Principal{}, false
	}
	return p, true
}

func (c *verifiedCache) put(token string, p Principal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= cacheSize {
		c.m = make(map[string]Principal, 1024)
	}
	c.m[token] = p
}
