package servicetoken_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/shared/servicetoken"
)

func TestMinterReusesItsTokenInProcess(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := b.minter(t, "device")
	first, err := m.Token(context.Background(), "user")
	if err != nil {
		t.Fatal(err)
	}
	second, err := m.Token(context.Background(), "user")
	if err != nil {
		t.Fatal(err)
	}
	if first != second || m.Signings() != 1 {
		t.Fatalf("two calls: same token %v, signings %d; want the same token and 1 signing", first == second, m.Signings())
	}
}

func TestMinterKeepsOneTokenPerAudience(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := b.minter(t, "device")
	v := b.verifier()
	for _, aud := range []string{"user", "billing", "app"} {
		tok, err := m.Token(context.Background(), aud)
		if err != nil {
			t.Fatal(err)
		}
		c, err := v.Verify(context.Background(), tok, aud)
		if err != nil || c.Audience != aud || c.Caller != "device" {
			t.Fatalf("token for %s: claims %+v, err %v", aud, c, err)
		}
	}
	if m.Signings() != 3 {
		t.Fatalf("signings = %d, want one per audience (3)", m.Signings())
	}
}

func TestMinterRefusesUnknownAudience(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.minter(t, "device").Token(context.Background(), "evil"); err == nil {
		t.Fatal("Token for an unknown audience succeeded")
	}
}

// TestMinterSignsOnceForABurstInOneProcess: 500 concurrent callers on a cold
// cache share one fetch and one signature.
func TestMinterSignsOnceForABurstInOneProcess(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := b.minter(t, "device")
	toks := burst(t, 500, m)
	if m.Signings() != 1 {
		t.Fatalf("signings = %d, want 1", m.Signings())
	}
	assertAllEqual(t, toks)
}

// TestMintersSharingRedisSignOnceInTotal: two Minters (two processes) of the
// same context, started together on a cold Redis, elect one signer; the other
// reads the winner's token.
func TestMintersSharingRedisSignOnceInTotal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m1, m2 := b.minter(t, "device"), b.minter(t, "device")
	var (
		wg           sync.WaitGroup
		toks1, toks2 []string
	)
	wg.Add(2)
	go func() { defer wg.Done(); toks1 = burst(t, 250, m1) }()
	go func() { defer wg.Done(); toks2 = burst(t, 250, m2) }()
	wg.Wait()
	if n := m1.Signings() + m2.Signings(); n != 1 {
		t.Fatalf("signings in total = %d (%d + %d), want 1", n, m1.Signings(), m2.Signings())
	}
	assertAllEqual(t, append(toks1, toks2...))
}

func TestMinterUsesTokenAnotherProcessStoredInRedis(t *testing.T) {
	t.Parallel()
	b := setup(t)
	first := b.token(t, "device", "user")
	m := b.minter(t, "device")
	second, err := m.Token(context.Background(), "user")
	if err != nil {
		t.Fatal(err)
	}
	if second != first || m.Signings() != 0 {
		t.Fatalf("second process: same token %v, signings %d; want the stored token and no signing", second == first, m.Signings())
	}
	keys, err := b.rdb.Keys(context.Background(), b.prefix+"device:user:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("redis keys %v (err %v), want exactly one token key", keys, err)
	}
	ttl := b.rdb.TTL(context.Background(), keys[0]).Val()
	if ttl <= 54*time.Minute || ttl > servicetoken.CacheFor {
		t.Fatalf("token key TTL = %v, want about %v", ttl, servicetoken.CacheFor)
	}
}

func TestMinterSignsAnewWhenTheCacheWindowEnds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	clock := time.Now()
	m := servicetoken.NewMinter("device", b.priv, servicetoken.MinterOptions{
		Redis: b.rdb, Log: b.log, KeyPrefix: b.prefix, Now: func() time.Time { return clock },
	})
	old, err := m.Token(context.Background(), "user")
	if err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(servicetoken.CacheFor + time.Second)
	fresh, err := m.Token(context.Background(), "user")
	if err != nil {
		t.Fatal(err)
	}
	if fresh == old || m.Signings() != 2 {
		t.Fatalf("after %v: new token %v, signings %d; want a new token and 2 signings", servicetoken.CacheFor, fresh != old, m.Signings())
	}
	// The stale token in Redis was replaced, so other processes get the new one.
	other := servicetoken.NewMinter("device", b.priv, servicetoken.MinterOptions{
		Redis: b.rdb, Log: b.log, KeyPrefix: b.prefix, Now: func() time.Time { return clock },
	})
	if got, err := other.Token(context.Background(), "user"); err != nil || got != fresh {
		t.Fatalf("other process got the new token: %v (err %v)", got == fresh, err)
	}
}

func TestMinterWorksWithoutRedis(t *testing.T) {
	t.Parallel()
	b := setup(t)
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { _ = down.Close() })
	m := servicetoken.NewMinter("device", b.priv, servicetoken.MinterOptions{Redis: down, Log: b.log})
	toks := burst(t, 50, m)
	assertAllEqual(t, toks)
	if _, err := b.verifier().Verify(context.Background(), toks[0], "user"); err != nil {
		t.Fatalf("token minted without Redis does not verify: %v", err)
	}
	if m.Signings() != 1 {
		t.Fatalf("signings = %d, want 1 (kept in process)", m.Signings())
	}
}

func TestMinterTokenHonoursCallerContext(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.minter(t, "device").Token(ctx, "user"); err == nil {
		t.Fatal("Token with a cancelled context and a cold cache succeeded")
	}
}

// burst calls m.Token(ctx, "user") from n goroutines released together.
func burst(t *testing.T, n int, m *servicetoken.Minter) []string {
	t.Helper()
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		toks  = make([]string, n)
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			toks[i], errs[i] = m.Token(context.Background(), "user")
		}()
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("Token: %v", err)
			break
		}
	}
	return toks
}

func assertAllEqual(t *testing.T, toks []string) {
	t.Helper()
	for i, tok := range toks {
		if tok == "" || tok != toks[0] {
			t.Fatalf("token %d differs from token 0 (or is empty)", i)
		}
	}
}
