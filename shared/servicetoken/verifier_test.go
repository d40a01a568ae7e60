package servicetoken_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/servicetoken"
)

func TestVerifyAcceptsMintedTokenAndReturnsItsClaims(t *testing.T) {
	t.Parallel()
	b := setup(t)
	before := time.Now().Truncate(time.Second)
	tok := b.token(t, servicetoken.ContextDevice, servicetoken.ContextUser)

	c, err := b.verifier().Verify(context.Background(), tok, servicetoken.ContextUser)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if c.Caller != "device" || c.Audience != "user" || c.ID == "" {
		t.Errorf("claims = %+v, want caller device, audience user, a jti", c)
	}
	if c.IssuedAt.Before(before) || c.ExpiresAt.Sub(c.IssuedAt) != time.Hour {
		t.Errorf("iat %v exp %v: want iat ≥ %v and exp = iat + 1h", c.IssuedAt, c.ExpiresAt, before)
	}
}

// TestVerifyRefusesTheNegativeCorpus: every token that is not a genuine
// service token for this audience is refused with the one generic 401.
func TestVerifyRefusesTheNegativeCorpus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	good := b.token(t, servicetoken.ContextDevice, servicetoken.ContextUser)
	parts := strings.Split(good, ".")

	withClaims := func(edit func(jwt.MapClaims)) string {
		c := claims("device", "user")
		edit(c)
		return signed(t, jwt.SigningMethodEdDSA, b.priv, c)
	}
	now := time.Now().Unix()
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	userKey := func() ed25519.PrivateKey { _, k, _ := ed25519.GenerateKey(rand.Reader); return k }()
	userToken, _, err := auth.NewIssuer(userKey, 15*time.Minute).Issue(auth.Principal{UserID: "u1", Username: "alice", Roles: []string{"admin"}})
	if err != nil {
		t.Fatalf("issue user token: %v", err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	tamperedBody := b64([]byte(strings.Replace(mustDecode(t, parts[1]), `"iss":"device"`, `"iss":"billing"`, 1)))
	if tamperedBody == parts[1] {
		t.Fatal("tampering left the body unchanged")
	}
	noneHeader := func(alg string) string {
		return b64([]byte(`{"alg":"`+alg+`","typ":"JWT"}`)) + "." + parts[1] + "."
	}
	hs := jwt.New(jwt.SigningMethodHS256)
	hs.Claims = claims("device", "user")
	hsWithPublicKey, err := hs.SignedString([]byte(b.pub))
	if err != nil {
		t.Fatal(err)
	}
	withHeader := func(k string, v any) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims("device", "user"))
		tok.Header[k] = v
		s, err := tok.SignedString(b.priv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	cases := []struct {
		name  string
		token string
	}{
		{"empty", ""},
		{"garbage", "not-a-jwt"},
		{"tampered body keeps old signature", parts[0] + "." + tamperedBody + "." + parts[2]},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(b.token(t, "billing", "user"), ".")[2]},
		{"signature cut off", parts[0] + "." + parts[1] + "."},
		{"signed with another key", signed(t, jwt.SigningMethodEdDSA, otherKey, claims("device", "user"))},
		{"alg none", signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("device", "user"))},
		{"alg None", noneHeader("None")},
		{"alg NONE", noneHeader("NONE")},
		{"HS256 with the public key as secret", hsWithPublicKey},
		{"expired", withClaims(func(c jwt.MapClaims) { c["iat"], c["nbf"], c["exp"] = now-7200, now-7200, now-3600 })},
		{"not yet valid", withClaims(func(c jwt.MapClaims) { c["nbf"] = now + 600 })},
		{"issued in the future", withClaims(func(c jwt.MapClaims) { c["iat"], c["nbf"], c["exp"] = now+600, now+600, now+3600 })},
		{"no exp", withClaims(func(c jwt.MapClaims) { delete(c, "exp") })},
		{"no nbf", withClaims(func(c jwt.MapClaims) { delete(c, "nbf") })},
		{"no iat", withClaims(func(c jwt.MapClaims) { delete(c, "iat") })},
		{"lives longer than an hour", withClaims(func(c jwt.MapClaims) { c["exp"] = now + 86400 })},
		{"wrong audience", withClaims(func(c jwt.MapClaims) { c["aud"] = []string{"billing"} })},
		{"missing audience", withClaims(func(c jwt.MapClaims) { delete(c, "aud") })},
		{"empty audience", withClaims(func(c jwt.MapClaims) { c["aud"] = []string{} })},
		{"two audiences", withClaims(func(c jwt.MapClaims) { c["aud"] = []string{"user", "billing"} })},
		{"unknown issuer", withClaims(func(c jwt.MapClaims) { c["iss"], c["sub"] = "evil", "service:evil" })},
		{"no issuer", withClaims(func(c jwt.MapClaims) { delete(c, "iss") })},
		{"subject names another context", withClaims(func(c jwt.MapClaims) { c["sub"] = "service:billing" })},
		{"no jti", withClaims(func(c jwt.MapClaims) { delete(c, "jti") })},
		{"typ access", withClaims(func(c jwt.MapClaims) { c["typ"] = "access" })},
		{"no typ", withClaims(func(c jwt.MapClaims) { delete(c, "typ") })},
		{"user token (typ access, user key)", userToken},
		{"user-shaped token with the service key", withClaims(func(c jwt.MapClaims) {
			c["typ"], c["iss"], c["sub"], c["aud"] = "access", "cloudphone/user", "u1", []string{"user"}
		})},
		{"kid header", withHeader("kid", "../../etc/passwd")},
		{"jku header", withHeader("jku", "http://169.254.169.254/keys")},
		{"header typ at+jwt", withHeader("typ", "at+jwt")},
		{"9 KiB token", good + strings.Repeat("A", 9<<10)},
		{"100k dots", "Bearer" + strings.Repeat(".", 100_000)},
	}
	v := b.verifier()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := v.Verify(context.Background(), tc.token, servicetoken.ContextUser)
			e := apierr.As(err)
			if e == nil || e.Code != apierr.Unauthorized || e.Message != "invalid or expired token" {
				t.Fatalf("Verify = %v, want apierr unauthorized with the generic message", err)
			}
		})
	}
}

func mustDecode(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestVerifyCacheHitStillChecksAudience(t *testing.T) {
	t.Parallel()
	b := setup(t)
	v := b.verifier()
	tok := b.token(t, "device", "user")
	for range 2 { // the second call is answered from the cache
		if _, err := v.Verify(context.Background(), tok, "user"); err != nil {
			t.Fatalf("Verify for its audience: %v", err)
		}
	}
	if _, err := v.Verify(context.Background(), tok, "billing"); !apierr.Is(err, apierr.Unauthorized) {
		t.Fatalf("cached token for user presented to billing: err = %v, want unauthorized", err)
	}
}

func TestVerifyCacheForgetsTokenAtItsExpiry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	clock := time.Now()
	v := servicetoken.NewVerifier(b.pub, servicetoken.VerifierOptions{Now: func() time.Time { return clock }})
	tok := b.token(t, "device", "user")
	if _, err := v.Verify(context.Background(), tok, "user"); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	clock = clock.Add(time.Hour + time.Minute)
	if _, err := v.Verify(context.Background(), tok, "user"); !apierr.Is(err, apierr.Unauthorized) {
		t.Fatalf("Verify after exp = %v, want unauthorized", err)
	}
}

func TestVerifyWithSmallCacheKeepsAcceptingManyTokens(t *testing.T) {
	t.Parallel()
	b := setup(t)
	v := servicetoken.NewVerifier(b.pub, servicetoken.VerifierOptions{CacheSize: 4})
	var toks []string
	for i := range 20 {
		c := claims("device", "user")
		c["jti"] = strings.Repeat("x", i+1)
		toks = append(toks, signed(t, jwt.SigningMethodEdDSA, b.priv, c))
	}
	for range 2 {
		for _, tok := range toks {
			if _, err := v.Verify(context.Background(), tok, "user"); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		}
	}
}

func TestIsServiceToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	userKey := func() ed25519.PrivateKey { _, k, _ := ed25519.GenerateKey(rand.Reader); return k }()
	userToken, _, err := auth.NewIssuer(userKey, 15*time.Minute).Issue(auth.Principal{UserID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		token string
		want  bool
	}{
		{"minted service token", b.token(t, "device", "user"), true},
		{"forged typ service", signed(t, jwt.SigningMethodHS256, []byte("k"), jwt.MapClaims{"typ": "service"}), true},
		{"issuer is a context", signed(t, jwt.SigningMethodHS256, []byte("k"), jwt.MapClaims{"iss": "billing"}), true},
		{"user access token", userToken, false},
		{"garbage", "a.b.c", false},
		{"empty", "", false},
	}
	for _, tc := range cases {
		if got := servicetoken.IsServiceToken(tc.token); got != tc.want {
			t.Errorf("%s: IsServiceToken = %v, want %v", tc.name, got, tc.want)
		}
	}
}
