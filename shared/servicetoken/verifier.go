package servicetoken

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cloudphone/cloudphone/shared/apierr"
)

// DefaultCacheSize is the number of verified tokens a Verifier remembers when
// VerifierOptions.CacheSize is 0.
const DefaultCacheSize = 4096

// VerifierOptions tunes a Verifier. The zero value is the production setting.
type VerifierOptions struct {
	// CacheSize bounds the verified-token cache: 0 means DefaultCacheSize, a
	// negative value turns the cache off.
	CacheSize int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Verifier checks service tokens. It is safe for concurrent use.
type Verifier struct {
	key    ed25519.PublicKey
	parser *jwt.Parser
	now    func() time.Time

	max   int
	mu    sync.RWMutex
	cache map[string]Claims
}

// NewVerifier returns a Verifier accepting service tokens signed by the
// private half of pub. It panics when pub is not an Ed25519 public key: that
// is a wiring mistake that must stop the process at start.
func NewVerifier(pub ed25519.PublicKey, opt VerifierOptions) *Verifier {
	if len(pub) != ed25519.PublicKeySize {
		panic("servicetoken: NewVerifier needs an Ed25519 public key")
	}
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	max := opt.CacheSize
	if max == 0 {
		max = DefaultCacheSize
	}
	v := &Verifier{
		key: pub,
		now: now,
		max: max,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithNotBeforeRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(Leeway),
			jwt.WithStrictDecoding(),
			jwt.WithTimeFunc(now),
		),
	}
	if max > 0 {
		v.cache = make(map[string]Claims, min(max, 1024))
	}
	return v
}

// errUnauthorized is the one answer to every token fault: the caller learns
// nothing about which check failed.
func errUnauthorized(cause error) error {
	return apierr.Wrap(apierr.Unauthorized, cause, "invalid or expired token")
}

// Verify checks that token is a service token for audience — signature
// (EdDSA only), typ "service", exactly one aud equal to audience, an issuer
// that is a known context with sub "service:<issuer>", jti, and iat, nbf and
// exp with exp at most TTL after iat — and returns its claims. Every fault is
// an apierr.Unauthorized with a generic message. A token verified before is
// answered from a bounded cache until its exp.
func (v *Verifier) Verify(ctx context.Context, token string, audience string) (Claims, error) {
	if len(token) == 0 || len(token) > MaxTokenBytes {
		return Claims{}, errUnauthorized(errors.New("token empty or too long"))
	}
	if audience == "" {
		return Claims{}, errUnauthorized(errors.New("no audience to check against"))
	}
	if v.cache != nil {
		v.mu.RLock()
		c, ok := v.cache[token]
		v.mu.RUnlock()
		if ok {
			if c.Audience != audience {
				return Claims{}, errUnauthorized(errors.New("token for another audience"))
			}
			if v.now().Before(c.ExpiresAt.Add(Leeway)) {
				return c, nil
			}
		}
	}
	c, err := v.parse(token, audience)
	if err != nil {
		return Claims{}, errUnauthorized(err)
	}
	v.remember(token, c)
	return c, nil
}

func (v *Verifier) parse(token, audience string) (Claims, error) {
	var c claims
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		for h, val := range t.Header {
			switch h {
			case "alg":
			case "typ":
				if val != "JWT" {
					return nil, fmt.Errorf("header typ %v", val)
				}
			default:
				// kid, jku, x5u, jwk, crit…: nothing a service token needs.
				return nil, fmt.Errorf("unexpected header %q", h)
			}
		}
		return v.key, nil
	})
	if err != nil {
		return Claims{}, err
	}
	switch {
	case c.Typ != TokenType:
		return Claims{}, fmt.Errorf("typ %q is not %q", c.Typ, TokenType)
	case len(c.Audience) != 1:
		return Claims{}, fmt.Errorf("token has %d audiences, want exactly 1", len(c.Audience))
	case c.Audience[0] != audience:
		return Claims{}, errors.New("token for another audience")
	case !KnownContext(c.Issuer):
		return Claims{}, errors.New("issuer is not a known context")
	case c.Subject != SubjectPrefix+c.Issuer:
		return Claims{}, errors.New("subject does not name the issuer")
	case c.ID == "":
		return Claims{}, errors.New("token has no jti")
	case c.IssuedAt == nil:
		return Claims{}, errors.New("token has no iat")
	case c.ExpiresAt.Sub(c.IssuedAt.Time) > TTL:
		return Claims{}, errors.New("token lifetime exceeds the service-token TTL")
	}
	return Claims{
		Caller:    c.Issuer,
		Audience:  c.Audience[0],
		ID:        c.ID,
		IssuedAt:  c.IssuedAt.Time,
		ExpiresAt: c.ExpiresAt.Time,
	}, nil
}

// remember caches a verified token. When the cache is full, expired entries
// are dropped first and then arbitrary ones until a quarter is free, so the
// cost of a full cache is paid once per max/4 insertions.
func (v *Verifier) remember(token string, c Claims) {
	if v.cache == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cache) >= v.max {
		now := v.now()
		for k, e := range v.cache {
			if !now.Before(e.ExpiresAt.Add(Leeway)) {
				delete(v.cache, k)
			}
		}
		for k := range v.cache {
			if len(v.cache) <= v.max-v.max/4-1 {
				break
			}
			delete(v.cache, k)
		}
	}
	v.cache[token] = c
}
