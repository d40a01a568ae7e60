package eventauth

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTokenFileSendsTheProjectedTokenAndFollowsItsRotation(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("first.jwt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := &TokenFile{Path: path, Now: func() time.Time { return now }}
	authorized := func() string {
		t.Helper()
		r, _ := http.NewRequest(http.MethodPost, "http://broker.example/", nil)
		if err := f.Authorize(r); err != nil {
			t.Fatalf("Authorize: %v", err)
		}
		return r.Header.Get("Authorization")
	}
	if got := authorized(); got != "Bearer first.jwt" {
		t.Fatalf("Authorization = %q, want the file's token without its newline", got)
	}

	// The kubelet rotates the token: the new one is sent once the copy in
	// hand is TokenFileRefresh old, not before.
	if err := os.WriteFile(path, []byte("second.jwt"), 0o600); err != nil {
		t.Fatal(err)
	}
	now = now.Add(TokenFileRefresh - time.Second)
	if got := authorized(); got != "Bearer first.jwt" {
		t.Errorf("Authorization = %q before the refresh, want the token in hand", got)
	}
	now = now.Add(2 * time.Second)
	if got := authorized(); got != "Bearer second.jwt" {
		t.Errorf("Authorization = %q after the refresh, want the rotated token", got)
	}
}

func TestTokenFileRefusesToSendWithoutAToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"not configured", "", "CLOUDPHONE_EVENT_TOKEN_FILE"},
		{"missing file", filepath.Join(dir, "missing"), "read the event token"},
		{"empty file", empty, "is empty"},
	} {
		r, _ := http.NewRequest(http.MethodPost, "http://broker.example/", nil)
		err := (&TokenFile{Path: tc.path}).Authorize(r)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Authorize = %v, want an error about %q", tc.name, err, tc.want)
		}
		if h := r.Header.Get("Authorization"); h != "" {
			t.Errorf("%s: Authorization %q set without a token", tc.name, h)
		}
	}
}
