package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/webhooksig"
)

const notifyAdminPassword = "admin-password-for-notifications"

// postFact sends a producer's fact to the platform's broker, as the
// producing context's outbox relay would.
func postFact(t *testing.T, p *running, typ, subject string, data any) {
	t.Helper()
	e, err := events.New(context.Background(), typ, "/cloudphone/e2e/producer", subject, data)
	if err != nil {
		t.Fatal(err)
	}
	if status := p.sendEvent(t, e); status != http.StatusAccepted {
		t.Fatalf("broker ingress answered %d for %s", status, typ)
	}
}

// A new user finds the welcome in the inbox and in the mail the platform's
// SMTP catcher caught; a phone's life arrives live on the SSE stream in
// order; a webhook endpoint gets signed deliveries, a failing one retried.
func TestRegistrationWelcomesInTheInboxByEmailLiveAndByWebhook(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.adminPassword = notifyAdminPassword
	e.extra = map[string]string{"WEBHOOK_ALLOW_LOOPBACK": "true", "WEBHOOK_RETRY_BACKOFF": "1s", "NOTIFICATION_DELIVERY_POLL": "200ms",
		// A short server write timeout, which the stream must outlive.
		"write_timeout": "4s", "NOTIFICATION_STREAM_HEARTBEAT": "1s"}
	p := start(t, e, &subscriber{})
	base := p.URL()
	alice := register(t, base, "alice")
	tok := login(t, base, "alice", "correct horse battery")
	admin := login(t, base, "admin", notifyAdminPassword)
	// Alice can pay for the phone minutes the facts below report (they are
	// charged when a phone stops), so billing has nothing to tell her.
	if code := call(t, "POST", base+"/api/v1/admin/users/"+alice.ID+"/credit", map[string]any{"amount": 100000, "reason": "e2e"},
		nil, "Authorization", "Bearer "+admin); code != http.StatusCreated {
		t.Fatalf("credit: %d", code)
	}
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

	var inbox struct {
		Items []struct {
			ID, Type, Title string
			Seq             int64
		}
		UnreadCount int `json:"unread_count"`
	}
	eventually(t, 20*time.Second, "no welcome in the inbox", func() bool {
		return call(t, "GET", base+"/api/v1/notifications", nil, &inbox, bearer(tok)...) == 200 && len(inbox.Items) == 1
	})
	if inbox.Items[0].Type != "user.registered" || inbox.Items[0].Title != "Welcome to cloudphone, alice" || inbox.UnreadCount != 1 {
		t.Fatalf("inbox: %+v", inbox)
	}
	var mail struct {
		Items []struct {
			Subject, Text string
			Envelope      struct{ To []string }
		}
	}
	eventually(t, 20*time.Second, "no welcome email caught", func() bool {
		return call(t, "GET", base+"/api/v1/admin/mail?to=alice@example.com", nil, &mail, bearer(admin)...) == 200 && len(mail.Items) == 1
	})
	if mail.Items[0].Subject != "Welcome to cloudphone, alice" || !strings.Contains(mail.Items[0].Text, "Hello alice") {
		t.Fatalf("welcome email: %+v", mail.Items[0])
	}
	if code := call(t, "GET", base+"/api/v1/admin/mail", nil, nil, bearer(tok)...); code != http.StatusForbidden {
		t.Fatalf("a user reads the caught mail: %d", code)
	}

	// A webhook endpoint that fails its first delivery.
	var mu sync.Mutex
	var hooks []*http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		hooks = append(hooks, r)
		if len(hooks) == 1 {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	t.Cleanup(srv.Close)
	var hook struct{ ID, Secret string }
	if code := call(t, "POST", base+"/api/v1/webhooks", map[string]any{"url": srv.URL, "event_types": []string{"device.running"}}, &hook, bearer(tok)...); code != http.StatusCreated {
		t.Fatalf("create webhook: %d", code)
	}

	// The live stream, through the edge like every public route.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/notifications/stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Last-Event-ID", strconv.FormatInt(inbox.Items[0].Seq, 10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func(prefix string) string {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stream ended before %q", prefix)
				}
				if strings.HasPrefix(l, prefix) {
					return strings.TrimPrefix(l, prefix)
				}
			case <-timeout:
				t.Fatalf("no %q on the stream", prefix)
			}
		}
	}
	next(": ready")
	time.Sleep(5 * time.Second) // past the server's write timeout
	next(": ping")
	dev := events.NewID()
	now := time.Now().UTC()
	postFact(t, p, deviceevents.EventRunning, dev, deviceevents.Running{SchemaVersion: 1, DeviceID: dev, UserID: alice.ID, CPUCores: 2, MemoryMB: 2048, At: now})
	postFact(t, p, deviceevents.EventStopped, dev, deviceevents.Stopped{SchemaVersion: 1, DeviceID: dev, UserID: alice.ID, At: now.Add(time.Minute), Reason: "user"})
	postFact(t, p, deviceevents.EventDeleted, dev, deviceevents.Deleted{SchemaVersion: 1, DeviceID: dev, UserID: alice.ID, At: now.Add(2 * time.Minute)})
	var types []string
	for range 3 {
		var n struct{ Type string }
		if err := json.Unmarshal([]byte(next("data: ")), &n); err != nil {
			t.Fatal(err)
		}
		types = append(types, n.Type)
	}
	// The broker may deliver the three facts in any order; the stream
	// carries them in the order they were recorded, each once.
	if len(types) != 3 || !slices.Contains(types, "device.running") || !slices.Contains(types, "device.stopped") || !slices.Contains(types, "device.deleted") {
		t.Fatalf("stream carried %v", types)
	}

	eventually(t, 30*time.Second, "the failing webhook was not retried", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(hooks) >= 2
	})
	mu.Lock()
	for i, r := range hooks[:2] {
		body, _ := io.ReadAll(r.Body)
		sig := r.Header.Get("Cloudphone-Signature")
		ts, _, _ := strings.Cut(strings.TrimPrefix(sig, "t="), ",")
		unix, _ := strconv.ParseInt(ts, 10, 64)
		if want := webhooksig.Sign(hook.Secret, time.Unix(unix, 0), body); sig != want || r.Header.Get("Cloudphone-Event") != "device.running" {
			t.Errorf("delivery %d: signature %q (want %q), event %q", i, sig, want, r.Header.Get("Cloudphone-Event"))
		}
	}
	mu.Unlock()

	// Preferences switch a channel off: no more device.running in the inbox.
	if code := call(t, "PUT", base+"/api/v1/notifications/preferences", map[string]any{"preferences": []map[string]any{{"type": "device.running", "in_app": false}}}, nil, bearer(tok)...); code != 200 {
		t.Fatalf("preferences: %d", code)
	}
	dev2 := events.NewID()
	postFact(t, p, deviceevents.EventRunning, dev2, deviceevents.Running{SchemaVersion: 1, DeviceID: dev2, UserID: alice.ID, CPUCores: 1, MemoryMB: 1024, At: now})
	postFact(t, p, deviceevents.EventDeleted, dev2, deviceevents.Deleted{SchemaVersion: 1, DeviceID: dev2, UserID: alice.ID, At: now})
	var n struct{ Type string }
	if err := json.Unmarshal([]byte(next("data: ")), &n); err != nil || n.Type != "device.deleted" {
		t.Fatalf("after switching device.running off, the stream carried %q (%v)", n.Type, err)
	}
}
