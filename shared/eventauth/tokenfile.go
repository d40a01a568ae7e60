package eventauth

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// TokenFileRefresh is how long a token read from a TokenFile is used before
// the file is read again. The kubelet replaces a projected service-account
// token once 80 % of its life has passed (48 minutes of the rendered hour), so
// a minute-old copy is always still valid.
const TokenFileRefresh = time.Minute

// TokenFile authorizes events with the token in a file: on Knative, the
// projected service-account token for the Broker's audience, which Eventing
// checks against the rendered EventPolicies (the pod's service account is its
// context's). Safe for concurrent use.
type TokenFile struct {
	Path string
	Now  func() time.Time // clock; default time.Now

	mu    sync.Mutex
	token string
	read  time.Time
}

// Token returns the file's token, read again when the last read is older than
// TokenFileRefresh. A file that cannot be read, or is empty, is an error (the
// event is then not sent, and its outbox retries it).
func (f *TokenFile) Token() (string, error) {
	now := time.Now
	if f.Now != nil {
		now = f.Now
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.token != "" && now().Sub(f.read) < TokenFileRefresh {
		return f.token, nil
	}
	if f.Path == "" {
		return "", errors.New("eventauth: no token file configured (CLOUDPHONE_EVENT_TOKEN_FILE)")
	}
	b, err := os.ReadFile(f.Path)
	if err != nil {
		return "", fmt.Errorf("eventauth: read the event token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("eventauth: the event token file %s is empty", f.Path)
	}
	f.token, f.read = tok, now()
	return tok, nil
}

// Authorize sets r's Authorization header to the file's token.
func (f *TokenFile) Authorize(r *http.Request) error {
	tok, err := f.Token()
	if err != nil {
		return err
	}
	r.Header.Set("Authorization", "Bearer "+tok)
	return nil
}
