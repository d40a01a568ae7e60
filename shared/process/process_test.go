package process

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/eventauth"
	"github.com/cloudphone/cloudphone/shared/events"
)

// On Knative (CLOUDPHONE_EVENT_AUTH=eventing) a process sends its events to
// the Broker with the projected service-account token its pod mounts, the
// identity Eventing's EventPolicies name; without that token it sends
// nothing.
func TestEventingModeSendsEventsWithTheProjectedToken(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	broker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Authorization")
		w.WriteHeader(http.StatusAccepted)
	}))
	defer broker.Close()
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("projected.sa.jwt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := eventauth.WithSender(context.Background(), "user")
	e, err := events.New(ctx, "cloudphone.user.registered", "/cloudphone/test", "", map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}

	send := func(tokenFile string) error {
		t.Helper()
		res, err := New(config.FromMap(map[string]string{
			"BROKER_URL": broker.URL, "CLOUDPHONE_EVENT_AUTH": "eventing", "CLOUDPHONE_EVENT_TOKEN_FILE": tokenFile,
		}), slog.New(slog.DiscardHandler), nil, nil)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		t.Cleanup(func() { _ = res.Close() })
		return res.Sender.Send(ctx, e)
	}
	if err := send(token); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if h := <-got; h != "Bearer projected.sa.jwt" {
		t.Errorf("the Broker got Authorization %q, want the projected token", h)
	}

	if err := send(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Errorf("Send succeeded without a token file")
	}
	select {
	case h := <-got:
		t.Errorf("an event reached the Broker without a token (Authorization %q)", h)
	default:
	}
}
