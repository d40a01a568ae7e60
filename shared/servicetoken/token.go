// Package servicetoken is the platform's service identity: short-lived EdDSA
// (Ed25519) JWTs that one bounded context presents when it calls another's
// /internal/v1 endpoints. A token names the calling context as issuer
// ("service:<caller>" as subject) and exactly one target context as audience,
// carries typ "service", and is signed with a key that is not the user-token
// key, so a user token can never pass as a service token and vice versa.
//
// A Minter signs a token once per (caller, audience) and shares it through
// Redis; a Verifier checks it; Guard protects internal routes with it;
// Transport and Client attach it to outgoing calls; IsServiceToken and
// RejectServiceTokens keep service tokens off public routes.
package servicetoken

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token constants shared by minting and verification.
const (
	// TokenType is the typ claim of every service token. User access tokens
	// carry "access".
	TokenType = "service"
	// SubjectPrefix prefixes the caller in the sub claim: "service:device".
	SubjectPrefix = "service:"
	// TTL is the lifetime of a service token (exp = iat + TTL).
	TTL = time.Hour
	// CacheFor is how long a minted token is reused, in process and in Redis;
	// the remaining TTL−CacheFor is the margin a reused token still has left.
	CacheFor = 55 * time.Minute
	// MaxTokenBytes is the longest token looked at; longer ones are refused
	// before any decoding.
	MaxTokenBytes = 8 << 10
	// Leeway is the clock skew tolerated on exp, nbf and iat.
	Leeway = 10 * time.Second
)

// The bounded contexts of the platform. Only these may issue service tokens
// or be their audience.
const (
	ContextUser          = "user"
	ContextBilling       = "billing"
	ContextDevice        = "device"
	ContextApp           = "app"
	ContextNotification  = "notification"
	ContextScheduler     = "scheduler"
	ContextDeviceRuntime = "device-runtime"
)

var knownContexts = map[string]bool{
	ContextUser: true, ContextBilling: true, ContextDevice: true, ContextApp: true,
	ContextNotification: true, ContextScheduler: true, ContextDeviceRuntime: true,
}

// KnownContext reports whether name is one of the platform's contexts.
func KnownContext(name string) bool { return knownContexts[name] }

// Config is the key material of service tokens, to embed in a function's typed
// configuration (shared/config). Callers need PrivateKey, callees PublicKey.
type Config struct {
	// PrivateKey is the standard base64 of the 32-byte Ed25519 seed.
	PrivateKey string `env:"CLOUDPHONE_SERVICE_TOKEN_KEY" secret:"service-token-key"`
	// PublicKey is the standard base64 of the 32-byte Ed25519 public key.
	PublicKey string `env:"CLOUDPHONE_SERVICE_TOKEN_PUBLIC_KEY" secret:"service-token-public-key"`
}

// Claims is what a verified service token says.
type Claims struct {
	Caller    string    // iss: the calling context
	Audience  string    // the one aud: the context being called
	ID        string    // jti
	IssuedAt  time.Time // iat
	ExpiresAt time.Time // exp
}

// claims is the JWT body of a service token.
type claims struct {
	Typ string `json:"typ"`
	jwt.RegisteredClaims
}

// ParsePrivateKey decodes s, the standard base64 of a 32-byte Ed25519 seed.
func ParsePrivateKey(s string) (ed25519.PrivateKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("servicetoken: private key is not base64: %w", err)
	}
	if len(b) != ed25519.SeedSize {
		return nil, fmt.Errorf("servicetoken: private key seed is %d bytes, want %d", len(b), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(b), nil
}

// ParsePublicKey decodes s, the standard base64 of a 32-byte Ed25519 public key.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("servicetoken: public key is not base64: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("servicetoken: public key is %d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// GenerateKeyStrings returns a new key pair in the form ParsePrivateKey and
// ParsePublicKey read.
func GenerateKeyStrings() (priv, pub string, err error) {
	pk, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("servicetoken: generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sk.Seed()), base64.StdEncoding.EncodeToString(pk), nil
}

// keyID is a short fingerprint of a public key. It is part of the Redis cache
// key, so that after a key rotation no process picks up a token signed with the
// old key.
func keyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:6])
}

// unverified is the part of a token's body read without checking its
// signature: enough to route or reuse a token, never to trust one.
type unverified struct {
	Typ string           `json:"typ"`
	Iss string           `json:"iss"`
	Aud jwt.ClaimStrings `json:"aud"`
	Iat *jwt.NumericDate `json:"iat"`
	Exp *jwt.NumericDate `json:"exp"`
}

// peek decodes the body of token without verifying it.
func peek(token string) (unverified, error) {
	var u unverified
	if len(token) == 0 || len(token) > MaxTokenBytes {
		return u, errors.New("token empty or too long")
	}
	_, rest, ok := strings.Cut(token, ".")
	if !ok {
		return u, errors.New("token is not a JWS")
	}
	body, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sig, ".") {
		return u, errors.New("token is not a JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return u, fmt.Errorf("token body: %w", err)
	}
	if err := json.Unmarshal(raw, &u); err != nil {
		return u, fmt.Errorf("token body: %w", err)
	}
	return u, nil
}

// IsServiceToken reports whether token looks like a service token — typ
// "service", or an issuer that is a context name — judged from its unverified
// body. It is a cheap pre-check for public routes, which must refuse service
// tokens: it never says a token is valid, and a token whose body cannot be
// read is reported as not a service token (the user-token verifier refuses it).
func IsServiceToken(token string) bool {
	u, err := peek(token)
	if err != nil {
		return false
	}
	return u.Typ == TokenType || KnownContext(u.Iss) || strings.HasPrefix(u.Iss, SubjectPrefix)
}

func newTokenID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("servicetoken: token id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
