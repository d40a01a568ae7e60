// Package webhooksig is the signature scheme of the platform's webhooks, the
// payment provider's to billing and the notification context's to users'
// endpoints: the header Header carries "t=<unix seconds>,v1=<hex
// HMAC-SHA256(secret, t + "." + body)>", with several v1 values allowed
// (while a secret is rotated).
package webhooksig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Header is the HTTP header that carries the signature.
const Header = "Cloudphone-Signature"

// Sign returns the Header value for body signed with secret at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + signature(secret, ts, body)
}

func signature(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Reasons Verify refuses a signature.
var (
	ErrMalformed = errors.New("signature header missing or malformed")
	ErrStale     = errors.New("signature timestamp outside the tolerance")
	ErrWrong     = errors.New("signature does not match")
)

// Verify checks header (a Header value) against body and secret: nil when
// one of its v1 values is body's signature and its timestamp is within
// tolerance of now, else ErrMalformed, ErrStale or ErrWrong.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case !ok:
			return ErrMalformed
		case k == "t":
			ts = v
		case k == "v1":
			sigs = append(sigs, v)
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrMalformed
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	want := []byte(signature(secret, ts, body))
	for _, sig := range sigs {
		if hmac.Equal([]byte(sig), want) {
			return nil
		}
	}
	return ErrWrong
}
