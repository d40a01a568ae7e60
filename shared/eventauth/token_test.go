package eventauth

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cloudphone/cloudphone/shared/apierr"
)

func keys(t testing.TB) (*Signer, *Verifier) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func TestATokenProvesItsSenderToItsAudienceOnly(t *testing.T) {
	t.Parallel()
	s, v := keys(t)
	tok, err := s.Token("billing", BrokerAudience)
	if err != nil {
		t.Fatal(err)
	}
	if sender, err := v.Verify(tok, BrokerAudience); err != nil || sender != "billing" {
		t.Fatalf("Verify = %q, %v; want billing", sender, err)
	}
	// Twice: the second answer comes from the cache and must agree.
	if _, err := v.Verify(tok, "billing-orders"); apierr.CodeOf(err) != apierr.Unauthorized {
		t.Errorf("token for the broker accepted by a function: %v", err)
	}
	if _, err := v.Verify(tok, "billing-orders"); apierr.CodeOf(err) != apierr.Unauthorized {
		t.Errorf("cached token for the broker accepted by a function: %v", err)
	}
	_, other := keys(t)
	if _, err := other.Verify(tok, BrokerAudience); apierr.CodeOf(err) != apierr.Unauthorized {
		t.Errorf("token of another key accepted: %v", err)
	}
}

func TestExpiredAndForeignTokensAreRefused(t *testing.T) {
	t.Parallel()
	s, v := keys(t)
	s.now = func() time.Time { return time.Now().Add(-2 * TTL) }
	old, err := s.Token("billing", BrokerAudience)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(old, BrokerAudience); apierr.CodeOf(err) != apierr.Unauthorized {
		t.Errorf("expired token accepted: %v", err)
	}
	// A service token (another typ, same key) is no event token.
	svc := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
		"typ": "service", "iss": Issuer, "sub": "billing", "aud": BrokerAudience,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	})
	str, err := svc.SignedString(s.key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(str, BrokerAudience); apierr.CodeOf(err) != apierr.Unauthorized {
		t.Errorf("service-typed token accepted: %v", err)
	}
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"typ": TokenType, "iss": Issuer, "sub": "billing", "aud": BrokerAudience, "exp": time.Now().Add(time.Hour).Unix()})
	unsigned, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if _, err := v.Verify(unsigned, BrokerAudience); apierr.CodeOf(err) != apierr.Unauthorized {
		t.Errorf("unsigned token accepted: %v", err)
	}
}

func TestAReceiverAdmitsItsSendersOnly(t *testing.T) {
	t.Parallel()
	s, v := keys(t)
	rc := &Receiver{Verifier: v, Senders: []string{Broker}}
	tests := []struct {
		name   string
		sender string
		aud    string
		code   apierr.Code
	}{
		{"the broker", Broker, "user-quota-grants", ""},
		{"a context straight to the function", "billing", "user-quota-grants", apierr.Forbidden},
		{"the broker's token for another function", Broker, "device-runtime", apierr.Unauthorized},
		{"no token", "", "", apierr.Unauthorized},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("POST", "/", nil)
		if tc.sender != "" {
			if err := s.Authorize(r, tc.sender, tc.aud); err != nil {
				t.Fatal(err)
			}
		}
		_, err := rc.Admit(r, "user-quota-grants")
		if got := apierr.CodeOf(err); err != nil && got != tc.code || err == nil && tc.code != "" {
			t.Errorf("%s: Admit = %v, want code %q", tc.name, err, tc.code)
		}
	}
	r := httptest.NewRequest("POST", "/", nil)
	r = r.WithContext(WithSender(r.Context(), Broker))
	if _, err := rc.Admit(r, "user-quota-grants"); err != nil {
		t.Errorf("in-process delivery from the broker refused: %v", err)
	}
}

func BenchmarkVerifyCachedToken(b *testing.B) {
	s, v := keys(b)
	tok, _ := s.Token("billing", BrokerAudience)
	for b.Loop() {
		if _, err := v.Verify(tok, BrokerAudience); err != nil {
			b.Fatal(err)
		}
	}
}
