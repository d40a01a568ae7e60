package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/shared/auth"
)

// memRevocations keeps revocations in memory so a benchmark measures the
// verification alone.
type memRevocations struct{ m sync.Map }

func (r *memRevocations) Revoked(_ context.Context, id string) (bool, error) {
	_, ok := r.m.Load(id)
	return ok, nil
}

func (r *memRevocations) Revoke(_ context.Context, id string, _ time.Time) error {
	r.m.Store(id, true)
	return nil
}

func TestCachedTokenIsStillRefusedOnceRevokedOrExpired(t *testing.T) {
	t.Parallel()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	rev := &memRevocations{}
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

// BenchmarkVerify compares a full EdDSA verification with a cache hit
// (revocations in memory, so neither pays a Redis round trip).
func BenchmarkVerify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	ctx := context.Background()
	iss := auth.NewIssuer(priv, 15*time.Minute)
	b.Run("miss", func(b *testing.B) {
		toks := make([]string, b.N)
		for i := range toks {
			toks[i], _, _ = iss.Issue(principal())
		}
		v := auth.NewVerifier(pub, &memRevocations{})
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
		v := auth.NewVerifier(pub, &memRevocations{})
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
