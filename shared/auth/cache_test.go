package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
	"github.com/cloudphone/cloudphone/shared/logging"
)

// watched returns Watched revocations on the test Redis whose subscription
// is up, so answers it has seen come from memory.
func watched(tb testing.TB) *auth.Watched {
	tb.Helper()
	w := auth.WatchRevocations(dbtest.Redis(tb), logging.Discard())
	deadline := time.Now().Add(5 * time.Second)
	for !w.Live() {
		if time.Now().After(deadline) {
			tb.Fatal("the revocation subscription did not come up")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return w
}

func TestCachedTokenIsStillRefusedOnceRevokedOrExpired(t *testing.T) {
	t.Parallel()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	rev := watched(t)
	v := auth.NewVerifier(pub, rev)
	ctx := context.Background()

	tok, _, err := auth.NewIssuer(priv, 15*time.Minute).Issue(principal())
	if err != nil {
		t.Fatal(err)
	}
	first, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	again, err := v.Verify(ctx, tok) // served from the cache
	if err != nil || again.TokenID != first.TokenID || again.UserID != first.UserID {
		t.Fatalf("cached verify: %+v, %v", again, err)
	}
	if err := rev.Revoke(ctx, first.TokenID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, tok); err == nil {
		t.Fatal("a revoked token was accepted from the cache")
	}

	short, _, err := auth.NewIssuer(priv, time.Millisecond).Issue(principal())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, short); err != nil {
		t.Fatal(err)
	}
	time.Sleep(auth.Leeway + 50*time.Millisecond)
	if _, err := v.Verify(ctx, short); err == nil {
		t.Fatal("an expired token was accepted from the cache")
	}
}

// BenchmarkVerify compares a first verification (EdDSA, and one Redis round
// trip for the token's revocations) with a cache hit (the token and its
// revocations answered from memory, as for every later request).
func BenchmarkVerify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	ctx := context.Background()
	iss := auth.NewIssuer(priv, 15*time.Minute)
	b.Run("miss", func(b *testing.B) {
		toks := make([]string, b.N)
		for i := range toks {
			toks[i], _, _ = iss.Issue(principal())
		}
		v := auth.NewVerifier(pub, watched(b))
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if _, err := v.Verify(ctx, toks[i]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hit", func(b *testing.B) {
		tok, _, _ := iss.Issue(principal())
		v := auth.NewVerifier(pub, watched(b))
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
