// Package auth issues and verifies the platform's user access tokens: EdDSA
// (Ed25519) JWTs carrying the user's id, name, roles and permissions, so that
// any function can authorize a request with the public key alone. Only the
// user context holds the private key.
package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cloudphone/cloudphone/shared/apierr"
)

// Token constants: every access token carries these and nothing else is accepted.
const (
	TokenIssuer   = "cloudphone/user"
	TokenAudience = "cloudphone"
	TokenType     = "access"
	// MaxTokenBytes is the longest token Verify looks at; longer ones are
	// refused before any parsing.
	MaxTokenBytes = 8 << 10
	// Leeway is the clock skew tolerated on exp, nbf and iat.
	Leeway = 10 * time.Second
)

// Principal is the authenticated caller as the access token describes it.
type Principal struct {
	UserID      string
	Username    string
	Roles       []string
	Permissions []string
	TokenID     string    // jti: the handle for revocation
	ExpiresAt   time.Time // exp
	// SessionID is the refresh family the token was issued in ("sid"), so
	// ending the session ends its access tokens; empty for tokens outside one.
	SessionID string
	// IssuedAt is when the token was issued, to the millisecond ("ims"):
	// user and session cutoffs refuse the tokens issued before them.
	IssuedAt time.Time
}

// HasRole reports whether p carries role.
func (p Principal) HasRole(role string) bool { return slices.Contains(p.Roles, role) }

// HasPermission reports whether p carries perm ("resource:action").
func (p Principal) HasPermission(perm string) bool { return slices.Contains(p.Permissions, perm) }

type claims struct {
	Name  string   `json:"name"`
	Roles []string `json:"roles"`
	Perms []string `json:"perms"`
	Typ   string   `json:"typ"`
	Sid   string   `json:"sid,omitempty"`
	Ims   int64    `json:"ims,omitempty"` // issued at, Unix ms (iat has whole seconds)
	jwt.RegisteredClaims
}

// Issuer signs access tokens. It is safe for concurrent use.
type Issuer struct {
	key ed25519.PrivateKey
	ttl time.Duration
	now func() time.Time
}

// NewIssuer returns an Issuer signing with priv, tokens valid for ttl. It
// panics when priv is not an Ed25519 private key or ttl is not positive: both
// are wiring mistakes that must stop the process at start.
func NewIssuer(priv ed25519.PrivateKey, ttl time.Duration) *Issuer {
	if len(priv) != ed25519.PrivateKeySize {
		panic("auth: NewIssuer needs an Ed25519 private key")
	}
	if ttl <= 0 {
		panic("auth: NewIssuer needs a positive token lifetime")
	}
	return &Issuer{key: priv, ttl: ttl, now: time.Now}
}

// TTL returns the lifetime of the tokens i issues.
func (i *Issuer) TTL() time.Duration { return i.ttl }

// Issue returns a signed access token for p (UserID required; SessionID
// carried; TokenID, ExpiresAt and IssuedAt of p are ignored: a fresh jti is
// drawn and exp is now + ttl) and its expiry.
func (i *Issuer) Issue(p Principal) (string, time.Time, error) {
	if p.UserID == "" {
		return "", time.Time{}, errors.New("auth: issue: principal has no user id")
	}
	jti, err := newTokenID()
	if err != nil {
		return "", time.Time{}, err
	}
	issued := i.now()
	now := issued.Truncate(time.Second)
	exp := now.Add(i.ttl)
	c := claims{
		Name:  p.Username,
		Roles: nonNil(p.Roles),
		Perms: nonNil(p.Permissions),
		Typ:   TokenType,
		Sid:   p.SessionID,
		Ims:   issued.UnixMilli(),
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    TokenIssuer,
			Subject:   p.UserID,
			Audience:  jwt.ClaimStrings{TokenAudience},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        jti,
		},
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(i.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: sign access token: %w", err)
	}
	return tok, exp, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func newTokenID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("auth: token id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Verifier checks access tokens. It is safe for concurrent use.
type Verifier struct {
	key     ed25519.PublicKey
	revoked Revocations
	parser  *jwt.Parser
	cache   verifiedCache
}

// NewVerifier returns a Verifier accepting tokens signed by the private half of
// pub and not listed in revoked. It panics when pub is not an Ed25519 public
// key or revoked is nil: a verifier that cannot see revocations would accept
// tokens of users who logged out.
func NewVerifier(pub ed25519.PublicKey, revoked Revocations) *Verifier {
	if len(pub) != ed25519.PublicKeySize {
		panic("auth: NewVerifier needs an Ed25519 public key")
	}
	if revoked == nil {
		panic("auth: NewVerifier needs Revocations")
	}
	return &Verifier{
		key:     pub,
		revoked: revoked,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
			jwt.WithAudience(TokenAudience),
			jwt.WithIssuer(TokenIssuer),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(Leeway),
			jwt.WithStrictDecoding(),
		),
	}
}

// errUnauthorized is the one answer to every token fault: the caller learns
// nothing about which check failed.
func errUnauthorized(cause error) error {
	return apierr.Wrap(apierr.Unauthorized, cause, "invalid or expired token")
}

// Verify checks token (signature, algorithm, issuer, audience, type, times and
// revocation) and returns its Principal. Every fault of the token is an
// apierr.Unauthorized with a generic message; when revocation cannot be
// checked it is apierr.Unavailable (the token is refused either way).
func (v *Verifier) Verify(ctx context.Context, token string) (Principal, error) {
	if len(token) == 0 || len(token) > MaxTokenBytes {
		return Principal{}, errUnauthorized(errors.New("token empty or too long"))
	}
	p, ok := v.cache.get(token, time.Now())
	if !ok {
		var err error
		if p, err = v.parse(token); err != nil {
			return Principal{}, err
		}
		v.cache.put(token, p)
	}
	revoked, err := v.revoked.Refused(ctx, p)
	if err != nil {
		return Principal{}, apierr.Wrap(apierr.Unavailable, err, "cannot check the token now, try again")
	}
	if revoked {
		return Principal{}, errUnauthorized(errors.New("token revoked"))
	}
	return p, nil
}

// parse checks token's signature and claims (not its revocation).
func (v *Verifier) parse(token string) (Principal, error) {
	var c claims
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		if typ, ok := t.Header["typ"]; ok && typ != "JWT" {
			return nil, fmt.Errorf("header typ %v", typ)
		}
		return v.key, nil
	})
	if err != nil {
		return Principal{}, errUnauthorized(err)
	}
	if c.Typ != TokenType || c.Subject == "" || c.ID == "" || c.NotBefore == nil || c.IssuedAt == nil {
		return Principal{}, errUnauthorized(errors.New("token lacks typ, sub, jti, nbf or iat"))
	}
	issued := c.IssuedAt.Time
	if c.Ims > 0 {
		issued = time.UnixMilli(c.Ims)
	}
	return Principal{
		UserID:      c.Subject,
		Username:    c.Name,
		Roles:       c.Roles,
		Permissions: c.Perms,
		TokenID:     c.ID,
		ExpiresAt:   c.ExpiresAt.Time,
		SessionID:   c.Sid,
		IssuedAt:    issued,
	}, nil
}

// ParsePrivateKey decodes s, the standard base64 of a 32-byte Ed25519 seed.
func ParsePrivateKey(s string) (ed25519.PrivateKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("auth: private key is not base64: %w", err)
	}
	if len(b) != ed25519.SeedSize {
		return nil, fmt.Errorf("auth: private key seed is %d bytes, want %d", len(b), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(b), nil
}

// ParsePublicKey decodes s, the standard base64 of a 32-byte Ed25519 public key.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("auth: public key is not base64: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("auth: public key is %d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// GenerateKeyStrings returns a new key pair in the form ParsePrivateKey and
// ParsePublicKey read.
func GenerateKeyStrings() (priv, pub string, err error) {
	pk, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("auth: generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sk.Seed()), base64.StdEncoding.EncodeToString(pk), nil
}
