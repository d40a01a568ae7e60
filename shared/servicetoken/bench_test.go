package servicetoken

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"testing"

	"github.com/cloudphone/cloudphone/shared/db/dbtest"
)

// Run: REDIS_URL=… go test -run '^$' -bench . -benchmem ./shared/servicetoken/

func internalMinter(b testing.TB) (*Minter, ed25519.PublicKey) {
	b.Helper()
	rdb := dbtest.Redis(b)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	prefix := "bench:svctoken:" + keyID(pub) + ":"
	b.Cleanup(func() {
		ctx := context.Background()
		if keys, _ := rdb.Keys(ctx, prefix+"*").Result(); len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	return NewMinter(ContextDevice, priv, MinterOptions{Redis: rdb, Log: slog.New(slog.DiscardHandler), KeyPrefix: prefix}), pub
}

func BenchmarkVerify(b *testing.B) {
	m, pub := internalMinter(b)
	ctx := context.Background()
	tok, err := m.Token(ctx, ContextUser)
	if err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, v *Verifier) {
		if _, err := v.Verify(ctx, tok, ContextUser); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := v.Verify(ctx, tok, ContextUser); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("miss", func(b *testing.B) { run(b, NewVerifier(pub, VerifierOptions{CacheSize: -1})) })
	b.Run("hit", func(b *testing.B) { run(b, NewVerifier(pub, VerifierOptions{})) })
	b.Run("hit_parallel", func(b *testing.B) {
		v := NewVerifier(pub, VerifierOptions{})
		if _, err := v.Verify(ctx, tok, ContextUser); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := v.Verify(ctx, tok, ContextUser); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkToken(b *testing.B) {
	ctx := context.Background()
	b.Run("process_hit", func(b *testing.B) {
		m, _ := internalMinter(b)
		if _, err := m.Token(ctx, ContextUser); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := m.Token(ctx, ContextUser); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("process_hit_parallel", func(b *testing.B) {
		m, _ := internalMinter(b)
		if _, err := m.Token(ctx, ContextUser); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := m.Token(ctx, ContextUser); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	// A process whose own cache is cold, reading the token another process stored.
	b.Run("redis_hit", func(b *testing.B) {
		m, _ := internalMinter(b)
		if _, err := m.Token(ctx, ContextUser); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			m.mu.Lock()
			delete(m.cache, ContextUser)
			m.mu.Unlock()
			if _, err := m.Token(ctx, ContextUser); err != nil {
				b.Fatal(err)
			}
		}
		if m.Signings() != 1 {
			b.Fatalf("signings = %d, want 1", m.Signings())
		}
	})
	// Cold everywhere: GET miss, SET NX of the sign lock, signing, SET + DEL.
	b.Run("cold_sign_and_share", func(b *testing.B) {
		m, _ := internalMinter(b)
		key := m.prefix + ContextUser + ":" + m.kid
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			m.mu.Lock()
			delete(m.cache, ContextUser)
			m.mu.Unlock()
			m.rdb.Del(ctx, key)
			b.StartTimer()
			if _, err := m.Token(ctx, ContextUser); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The signature alone (what a process without Redis pays once per audience).
	b.Run("sign_only", func(b *testing.B) {
		m, _ := internalMinter(b)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := m.sign(ContextUser); err != nil {
				b.Fatal(err)
			}
		}
	})
}
