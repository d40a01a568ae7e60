package device

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cloudphone/cloudphone/shared/servicetoken"
)

// Ticket is what a connection ticket grants: one ADB session with one
// device until ExpiresAt. ID tells tickets apart, so that each is used once.
type Ticket struct {
	ID        string    `json:"id"`
	DeviceID  string    `json:"device_id"`
	UserID    string    `json:"user_id"`
	ADB       string    `json:"adb"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Tickets signs and checks connection tickets with HMAC-SHA256: a ticket is
// base64url(JSON Ticket) "." base64url(MAC). Safe for concurrent use.
type Tickets struct {
	key []byte
	ttl time.Duration
}

// ticketKeyLabel derives the ticket key from the service-token key when no
// key of its own is configured.
const ticketKeyLabel = "cloudphone/device/connection-ticket/v1"

// NewTickets returns Tickets from key (standard base64, at least 32 bytes)
// or, when key is empty, from a key derived from serviceTokenKey (the
// standard base64 Ed25519 seed of CLOUDPHONE_SERVICE_TOKEN_KEY). ttl must be
// positive.
func NewTickets(key, serviceTokenKey string, ttl time.Duration) (*Tickets, error) {
	if ttl <= 0 {
		return nil, errors.New("device: DEVICE_TICKET_TTL must be positive")
	}
	if key != "" {
		k, err := base64.StdEncoding.DecodeString(key)
		if err != nil || len(k) < 32 {
			return nil, errors.New("device: CLOUDPHONE_DEVICE_TICKET_KEY must be the standard base64 of at least 32 bytes")
		}
		return &Tickets{key: k, ttl: ttl}, nil
	}
	if serviceTokenKey == "" {
		return nil, errors.New("device: neither CLOUDPHONE_DEVICE_TICKET_KEY (secret device-ticket-key) nor CLOUDPHONE_SERVICE_TOKEN_KEY (secret service-token-key) is set")
	}
	priv, err := servicetoken.ParsePrivateKey(serviceTokenKey)
	if err != nil {
		return nil, fmt.Errorf("device: CLOUDPHONE_SERVICE_TOKEN_KEY: %w", err)
	}
	m := hmac.New(sha256.New, priv.Seed())
	m.Write([]byte(ticketKeyLabel))
	return &Tickets{key: m.Sum(nil), ttl: ttl}, nil
}

// TTL is how long a ticket is valid.
func (t *Tickets) TTL() time.Duration { return t.ttl }

// Sign returns the ticket for tk.
func (t *Tickets) Sign(tk Ticket) (string, error) {
	body, err := json.Marshal(tk)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	payload := enc.EncodeToString(body)
	return payload + "." + enc.EncodeToString(t.mac(payload)), nil
}

// Verify returns the Ticket that s carries when its MAC is valid and it has
// not expired at now; otherwise an error.
func (t *Tickets) Verify(s string, now time.Time) (Ticket, error) {
	payload, sig, ok := strings.Cut(s, ".")
	enc := base64.RawURLEncoding
	mac, err := enc.DecodeString(sig)
	if !ok || err != nil || !hmac.Equal(mac, t.mac(payload)) {
		return Ticket{}, errors.New("connection ticket: bad signature")
	}
	body, err := enc.DecodeString(payload)
	if err != nil {
		return Ticket{}, errors.New("connection ticket: malformed")
	}
	var tk Ticket
	if err := json.Unmarshal(body, &tk); err != nil {
		return Ticket{}, errors.New("connection ticket: malformed")
	}
	if !now.Before(tk.ExpiresAt) {
		return Ticket{}, errors.New("connection ticket: expired")
	}
	return tk, nil
}

func (t *Tickets) mac(payload string) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}
