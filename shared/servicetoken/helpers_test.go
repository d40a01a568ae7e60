package servicetoken_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/shared/db/dbtest"
	"github.com/cloudphone/cloudphone/shared/servicetoken"
)

// bundle is what a test needs: one service key pair, a Redis namespace of its
// own, and constructors bound to both.
type bundle struct {
	priv   ed25519.PrivateKey
	pub    ed25519.PublicKey
	rdb    *redis.Client
	prefix string
	log    *slog.Logger
}

func setup(t testing.TB) bundle {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rdb := dbtest.Redis(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "test:svctoken:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := rdb.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	return bundle{priv: priv, pub: pub, rdb: rdb, prefix: prefix, log: slog.New(slog.DiscardHandler)}
}

func (b bundle) minter(t testing.TB, caller string) *servicetoken.Minter {
	t.Helper()
	return servicetoken.NewMinter(caller, b.priv, servicetoken.MinterOptions{Redis: b.rdb, Log: b.log, KeyPrefix: b.prefix})
}

func (b bundle) verifier() *servicetoken.Verifier {
	return servicetoken.NewVerifier(b.pub, servicetoken.VerifierOptions{})
}

// token returns a token minted by caller's Minter for audience.
func (b bundle) token(t testing.TB, caller, audience string) string {
	t.Helper()
	tok, err := b.minter(t, caller).Token(context.Background(), audience)
	if err != nil {
		t.Fatalf("mint %s→%s: %v", caller, audience, err)
	}
	return tok
}

// claims returns the claims of a well-formed service token from caller to
// audience issued now; cases of the negative corpus change one thing.
func claims(caller string, audience ...string) jwt.MapClaims {
	now := time.Now().Unix()
	return jwt.MapClaims{
		"typ": "service",
		"iss": caller,
		"sub": "service:" + caller,
		"aud": audience,
		"iat": now,
		"nbf": now,
		"exp": now + 3600,
		"jti": "0123456789abcdef",
	}
}

// signed signs c with method and key.
func signed(t testing.TB, method jwt.SigningMethod, key any, c jwt.Claims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatalf("sign test token: %v", err)
	}
	return tok
}
