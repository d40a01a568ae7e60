package servicetoken

import (
	"context"
	"testing"
	"time"
)

// TestMinterSignsItselfWhenTheElectedSignerVanishes: a process that won the
// sign lock and died leaves no token; the waiter signs after the lock period
// and publishes with SET NX.
func TestMinterSignsItselfWhenTheElectedSignerVanishes(t *testing.T) {
	t.Parallel()
	m, _ := internalMinter(t)
	m.lockFor = 100 * time.Millisecond
	ctx := context.Background()
	key := m.prefix + ContextUser + ":" + m.kid
	if err := m.rdb.Set(ctx, key+":lock", "dead-process", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	tok, err := m.Token(ctx, ContextUser)
	if err != nil {
		t.Fatal(err)
	}
	if stored := m.rdb.Get(ctx, key).Val(); stored != tok || m.Signings() != 1 {
		t.Fatalf("stored token is ours: %v, signings %d; want our token shared and 1 signing", stored == tok, m.Signings())
	}
}

func TestVerifierCacheStaysBounded(t *testing.T) {
	t.Parallel()
	m, pub := internalMinter(t)
	v := NewVerifier(pub, VerifierOptions{CacheSize: 8})
	for range 50 {
		c, err := m.sign(ContextUser)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(context.Background(), c.token, ContextUser); err != nil {
			t.Fatal(err)
		}
		v.mu.RLock()
		n := len(v.cache)
		v.mu.RUnlock()
		if n > 8 {
			t.Fatalf("cache holds %d tokens, bound is 8", n)
		}
	}
}
