package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
)

type bundle struct {
	priv     ed25519.PrivateKey
	pub      ed25519.PublicKey
	issuer   *auth.Issuer
	verifier *auth.Verifier
	revoked  auth.Revocations
}

func setup(t testing.TB) bundle {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rev := auth.NewRedisRevocations(dbtest.Redis(t))
	return bundle{priv: priv, pub: pub, issuer: auth.NewIssuer(priv, 15*time.Minute), verifier: auth.NewVerifier(pub, rev), revoked: rev}
}

func principal() auth.Principal {
	return auth.Principal{UserID: "0b6f3f1e-1111-4a4a-9b9b-000000000001", Username: "alice", Roles: []string{"user"}, Permissions: []string{"device:create", "device:read"}}
}

// sign builds a token with arbitrary claims and method, for the attacks below.
func sign(t *testing.T, method jwt.SigningMethod, key any, mc jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, mc).SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func validClaims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"sub": "u1", "name": "alice", "roles": []string{"user"}, "perms": []string{"device:read"},
		"jti": "j1", "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"iss": auth.TokenIssuer, "aud": auth.TokenAudience, "typ": auth.TokenType,
	}
}

func with(mc jwt.MapClaims, k string, v any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for kk, vv := range mc {
		out[kk] = vv
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func TestIssueVerifyRoundTripCarriesPrincipal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	want := principal()
	tok, exp, err := b.issuer.Issue(want)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(exp); d < 14*time.Minute || d > 15*time.Minute {
		t.Fatalf("exp in %v, want ~15m", d)
	}
	got, err := b.verifier.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.UserID != want.UserID || got.Username != want.Username || strings.Join(got.Roles, ",") != "user" ||
		strings.Join(got.Permissions, ",") != "device:create,device:read" || got.TokenID == "" || !got.ExpiresAt.Equal(exp) {
		t.Fatalf("principal = %+v", got)
	}
	if !got.HasRole("user") || got.HasRole("admin") || !got.HasPermission("device:read") || got.HasPermission("admin:users") {
		t.Fatal("HasRole/HasPermission disagree with the token")
	}
	// The header says typ JWT and alg EdDSA.
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Header["typ"] != "JWT" || parsed.Header["alg"] != "EdDSA" {
		t.Fatalf("header = %v", parsed.Header)
	}
	mc := parsed.Claims.(jwt.MapClaims)
	for _, k := range []string{"sub", "name", "roles", "perms", "jti", "iat", "nbf", "exp", "iss", "aud", "typ"} {
		if _, ok := mc[k]; !ok {
			t.Errorf("claim %q missing", k)
		}
	}
}

func TestVerifyRefusesEveryForgedOrStaleToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	good, _, err := b.issuer.Issue(principal())
	if err != nil {
		t.Fatal(err)
	}
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	parts := strings.Split(good, ".")
	sig := []byte(parts[2])
	sig[10] ^= 'A' ^ 'B' // keeps it base64url, changes the bytes
	tampered := parts[0] + "." + parts[1] + "." + string(sig)
	forgedPayload := strings.Split(sign(t, jwt.SigningMethodEdDSA, otherPriv, with(validClaims(), "roles", []string{"admin"})), ".")[1]
	cases := map[string]string{
		"empty":                       "",
		"tampered signature":          tampered,
		"tampered payload":            parts[0] + "." + forgedPayload + "." + parts[2],
		"expired":                     sign(t, jwt.SigningMethodEdDSA, b.priv, with(validClaims(), "exp", now.Add(-time.Hour).Unix())),
		"nbf in the future":           sign(t, jwt.SigningMethodEdDSA, b.priv, with(validClaims(), "nbf", now.Add(time.Hour).Unix())),
		"iat in the future":           sign(t, jwt.SigningMethodEdDSA, b.priv, with(validClaims(), "iat", now.Add(time.Hour).Unix())),
		"alg none":                    sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, validClaims()),
		"HS256 with public key bytes": sign(t, jwt.SigningMethodHS256, []byte(b.pub), validClaims()),
		"wrong audience":              sign(t, jwt.SigningMethodEdDSA, b.priv, with(validClaims(), "aud", "billing")),
		"wrong issuer":                sign(t, jwt.SigningMethodEdDSA, b.priv, with(validClaims(), "iss", "someone")),
		"missing exp":                 sign(t, jwt.SigningMethodEdDSA, b.priv, with(validClaims(), "exp", nil)),
		"missing sub":                 sign(t, jwt.SigningMethodEdDSA, b.priv, with(validClaims(), "sub", nil)),
		"missing jti":                 sign(t, jwt.SigningMethodEdDSA, b.priv, with(validClaims(), "jti", nil)),
		"wrong typ claim":             sign(t, jwt.SigningMethodEdDSA, b.priv, with(validClaims(), "typ", "refresh")),
		"different key":               sign(t, jwt.SigningMethodEdDSA, otherPriv, validClaims()),
		"100k dots":                   strings.Repeat(".", 100_000),
		"oversized but well formed":   sign(t, jwt.SigningMethodEdDSA, b.priv, with(validClaims(), "pad", strings.Repeat("x", auth.MaxTokenBytes))),
		"not a jwt":                   "hello",
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := b.verifier.Verify(context.Background(), tok)
			if !apierr.Is(err, apierr.Unauthorized) {
				t.Fatalf("Verify = %v, want unauthorized", err)
			}
			if e := apierr.As(err); e.Message != "invalid or expired token" {
				t.Fatalf("message %q is not the generic one", e.Message)
			}
		})
	}
	// The control: the hand-built valid claims do pass, so each case above
	// fails for its own reason.
	if _, err := b.verifier.Verify(context.Background(), sign(t, jwt.SigningMethodEdDSA, b.priv, validClaims())); err != nil {
		t.Fatalf("valid hand-built token refused: %v", err)
	}
}

func TestRevokedTokenIsRefusedUntilItExpires(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rdb := dbtest.Redis(t)
	tok, exp, err := b.issuer.Issue(principal())
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.verifier.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.revoked.Revoke(context.Background(), p.TokenID, exp); err != nil {
		t.Fatal(err)
	}
	if _, err := b.verifier.Verify(context.Background(), tok); !apierr.Is(err, apierr.Unauthorized) {
		t.Fatalf("revoked token: Verify = %v, want unauthorized", err)
	}
	ttl, err := rdb.TTL(context.Background(), auth.RevokedKeyPrefix+p.TokenID).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl < 14*time.Minute || ttl > 16*time.Minute {
		t.Fatalf("revocation TTL = %v, want about the token's remaining life", ttl)
	}
	// Another token of the same user is unaffected.
	other, _, _ := b.issuer.Issue(principal())
	if _, err := b.verifier.Verify(context.Background(), other); err != nil {
		t.Fatalf("unrevoked token refused: %v", err)
	}
}

func TestRequirePutsPrincipalInContextAndRefusesOthers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tok, _, _ := b.issuer.Issue(principal())
	h := auth.Require(b.verifier, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := auth.PrincipalFrom(r.Context())
		if !ok || p.Username != "alice" {
			t.Errorf("principal = %+v, %v", p, ok)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	for name, tc := range map[string]struct {
		header string
		want   int
	}{
		"valid bearer":       {"Bearer " + tok, http.StatusNoContent},
		"lower-case scheme":  {"bearer " + tok, http.StatusNoContent},
		"no header":          {"", http.StatusUnauthorized},
		"basic scheme":       {"Basic " + tok, http.StatusUnauthorized},
		"garbage token":      {"Bearer x.y.z", http.StatusUnauthorized},
		"bearer with no tok": {"Bearer ", http.StatusUnauthorized},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/api/v1/users/me", nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Fatalf("status = %d, want %d (%s)", w.Code, tc.want, w.Body)
			}
			if tc.want == http.StatusUnauthorized && !strings.Contains(w.Body.String(), `"code":"unauthorized"`) {
				t.Fatalf("body = %s", w.Body)
			}
		})
	}
}

func TestKeyStringsRoundTrip(t *testing.T) {
	t.Parallel()
	privS, pubS, err := auth.GenerateKeyStrings()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := auth.ParsePrivateKey(privS)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := auth.ParsePublicKey(pubS)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) {
		t.Fatal("public key does not match the private key")
	}
	for _, bad := range []string{"", "not base64!", "AAAA", pubS + pubS} {
		if _, err := auth.ParsePrivateKey(bad); err == nil {
			t.Errorf("ParsePrivateKey(%q) accepted", bad)
		}
		if _, err := auth.ParsePublicKey(bad); err == nil {
			t.Errorf("ParsePublicKey(%q) accepted", bad)
		}
	}
}

func FuzzVerify(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	good, _, _ := auth.NewIssuer(priv, time.Minute).Issue(principal())
	f.Add(good)
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add(strings.Repeat(".", 1000))
	v := auth.NewVerifier(pub, auth.NewRedisRevocations(dbtest.Redis(f)))
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := v.Verify(context.Background(), tok)
		if err == nil && tok != good {
			t.Fatalf("accepted a token that was never issued: %q -> %+v", tok, p)
		}
		if err != nil && !apierr.Is(err, apierr.Unauthorized) {
			t.Fatalf("Verify(%q) = %v, want unauthorized", tok, err)
		}
	})
}
