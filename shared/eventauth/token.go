// Package eventauth proves who sent an event, in the manner of Knative
// Eventing's OIDC sender authentication: every event POSTed to the broker or
// to an event function carries an audience-bound bearer token of the sending
// identity, and the receiver admits it only when the token verifies and the
// receiver's Policy allows that sender to send that event type.
//
// An identity is a bounded context (its outbox relay sends that context's
// events, from whichever of its functions' processes it runs in), Broker (it
// delivers to the functions and routes their replies) or PingSource (the
// schedules). Tokens are Ed25519-signed JWTs made with the service-token key
// pair: a process that can sign service tokens can sign event tokens, and no
// other.
package eventauth

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cloudphone/cloudphone/shared/apierr"
)

// The identities that are not contexts.
const (
	Broker     = "broker"
	PingSource = "pingsource"
)

// BrokerAudience is the audience of tokens sent to the broker's ingress; a
// token sent to an event function has the function's name as its audience.
const BrokerAudience = "broker"

const (
	// TokenType is the typ claim of an event token, so that no other token
	// signed with the same key (a service token) passes for one.
	TokenType = "event"
	// Issuer is the iss claim of every event token.
	Issuer = "cloudphone-events"
	// TTL is how long a token is valid; a Signer reuses one for at most
	// reuseFor, so a token in use always has minutes left.
	TTL      = time.Hour
	reuseFor = 50 * time.Minute
	// Leeway absorbs clock skew between processes.
	Leeway = 10 * time.Second
	// MaxTokenBytes bounds the Authorization header a receiver parses.
	MaxTokenBytes = 4 << 10
)

type claims struct {
	Typ string `json:"typ"`
	jwt.RegisteredClaims
}

// Signer makes the tokens a process sends events with. Safe for concurrent
// use; a token is signed once per (sender, audience) and reused while it has
// more than ten minutes left.
type Signer struct {
	key ed25519.PrivateKey
	now func() time.Time

	mu    sync.Mutex
	cache map[[2]string]signed
}

type signed struct {
	token string
	until time.Time
}

// NewSigner returns a signer with key; it fails when key is not an Ed25519
// private key.
func NewSigner(key ed25519.PrivateKey) (*Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("eventauth: signer needs an Ed25519 private key")
	}
	return &Signer{key: key, now: time.Now, cache: map[[2]string]signed{}}, nil
}

// Token returns a token proving sender to audience.
func (s *Signer) Token(sender, audience string) (string, error) {
	if sender == "" || audience == "" {
		return "", errors.New("eventauth: token needs a sender and an audience")
	}
	now := s.now()
	k := [2]string{sender, audience}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.cache[k]; ok && now.Before(c.until) {
		return c.token, nil
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims{Typ: TokenType, RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    Issuer,
		Subject:   sender,
		Audience:  jwt.ClaimStrings{audience},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(TTL)),
	}})
	str, err := tok.SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("eventauth: sign token for %s to %s: %w", sender, audience, err)
	}
	s.cache[k] = signed{token: str, until: now.Add(reuseFor)}
	return str, nil
}

// Authorize sets r's Authorization header to a token proving sender to
// audience.
func (s *Signer) Authorize(r *http.Request, sender, audience string) error {
	tok, err := s.Token(sender, audience)
	if err != nil {
		return err
	}
	r.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

// Verifier checks event tokens with the public key. Safe for concurrent use:
// a verified token is remembered until it expires, so the signature of a
// token reused for an hour is checked once.
type Verifier struct {
	key    ed25519.PublicKey
	now    func() time.Time
	parser *jwt.Parser

	seen sync.Map // token → verified
}

type verified struct {
	sender   string
	audience string
	expires  time.Time
}

// NewVerifier returns a verifier with key; it fails when key is not an
// Ed25519 public key.
func NewVerifier(key ed25519.PublicKey) (*Verifier, error) {
	if len(key) != ed25519.PublicKeySize {
		return nil, errors.New("eventauth: verifier needs an Ed25519 public key")
	}
	return &Verifier{key: key, now: time.Now, parser: jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(Issuer), jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(Leeway),
	)}, nil
}

// Verify returns the sender a token proves to audience. Any failure (no
// signature of this key, another audience, expired, not an event token) is an
// apierr Unauthorized.
func (v *Verifier) Verify(token, audience string) (string, error) {
	if len(token) == 0 || len(token) > MaxTokenBytes {
		return "", apierr.New(apierr.Unauthorized, "event sender token missing or too long")
	}
	now := v.now()
	if c, ok := v.seen.Load(token); ok {
		c := c.(verified)
		if now.Before(c.expires.Add(Leeway)) {
			if c.audience != audience {
				return "", apierr.New(apierr.Unauthorized, "event sender token is for another receiver")
			}
			return c.sender, nil
		}
		v.seen.Delete(token)
	}
	var c claims
	parsed, err := v.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return v.key, nil })
	if err != nil || !parsed.Valid {
		return "", apierr.Wrap(apierr.Unauthorized, err, "event sender token is not valid")
	}
	if c.Typ != TokenType || c.Subject == "" || len(c.Audience) != 1 || c.ExpiresAt == nil {
		return "", apierr.New(apierr.Unauthorized, "not an event sender token")
	}
	if c.Audience[0] != audience {
		return "", apierr.New(apierr.Unauthorized, "event sender token is for another receiver")
	}
	v.seen.Store(token, verified{sender: c.Subject, audience: c.Audience[0], expires: c.ExpiresAt.Time})
	return c.Subject, nil
}

// FromRequest returns the sender proved by r's bearer token to audience.
func (v *Verifier) FromRequest(r *http.Request, audience string) (string, error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return "", apierr.New(apierr.Unauthorized, "events need a sender token: Authorization: Bearer <token>")
	}
	return v.Verify(strings.TrimSpace(tok), audience)
}

type senderKey struct{}

// WithSender marks ctx as carrying an event sent in-process by sender. Only
// code in the process can set it, so a receiver takes it as proof as good as
// a token.
func WithSender(ctx context.Context, sender string) context.Context {
	return context.WithValue(ctx, senderKey{}, sender)
}

// SenderFrom returns the in-process sender WithSender put in ctx, or "".
func SenderFrom(ctx context.Context) string {
	s, _ := ctx.Value(senderKey{}).(string)
	return s
}
