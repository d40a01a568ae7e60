package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/events"
)

// TestAppFactsReachTheUserOnTheirChannelsExactlyOnce posts the device
// context's app facts to the broker, each twice with the same id as a
// redelivery would: the user is told of each once, on the channels their
// preferences leave on (in-app, email through the SMTP catcher, webhook).
func TestAppFactsReachTheUserOnTheirChannelsExactlyOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.adminPassword = notifyAdminPassword
	e.extra = map[string]string{"WEBHOOK_ALLOW_LOOPBACK": "true", "NOTIFICATION_DELIVERY_POLL": "200ms"}
	p := start(t, e, &subscriber{})
	base := p.URL()
	alice := register(t, base, "alice")
	tok := login(t, base, "alice", "correct horse battery")
	admin := login(t, base, "admin", notifyAdminPassword)
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

	var mu sync.Mutex
	var hooked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		hooked = append(hooked, r.Header.Get("Cloudphone-Event"))
	}))
	t.Cleanup(srv.Close)
	appTypes := []string{"app.installed", "app.install_failed", "app.uninstalled"}
	if code := call(t, "POST", base+"/api/v1/webhooks", map[string]any{"url": srv.URL, "event_types": appTypes}, nil, bearer(tok)...); code != http.StatusCreated {
		t.Fatalf("create webhook: %d", code)
	}
	// Email for installs too (off by default); nothing at all for uninstalls.
	prefs := map[string]any{"preferences": []map[string]any{
		{"type": "app.installed", "email": true},
		{"type": "app.uninstalled", "in_app": false, "email": false, "webhook": false},
	}}
	if code := call(t, "PUT", base+"/api/v1/notifications/preferences", prefs, nil, bearer(tok)...); code != 200 {
		t.Fatalf("preferences: %d", code)
	}

	dev := events.NewID()
	for _, f := range []struct{ typ, reason string }{
		{deviceevents.EventAppInstalled, ""},
		{deviceevents.EventAppInstallFailed, "digest_mismatch"},
		{deviceevents.EventAppUninstalled, ""},
	} {
		ev, err := events.New(context.Background(), f.typ, "/cloudphone/device/device-runtime", dev, deviceevents.AppFact{
			SchemaVersion: 1, DeviceID: dev, UserID: alice.ID, AppID: events.NewID(), Package: "com.example.notes",
			VersionCode: 3, Reason: f.reason, At: time.Now().UTC()})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if status := p.sendEvent(t, ev); status != http.StatusAccepted {
				t.Fatalf("broker ingress answered %d for %s", status, f.typ)
			}
		}
	}

	want := []string{"app.install_failed", "app.installed"}
	inboxTypes := func() []string {
		var inbox struct{ Items []struct{ Type string } }
		call(t, "GET", base+"/api/v1/notifications", nil, &inbox, bearer(tok)...)
		var out []string
		for _, n := range inbox.Items {
			if n.Type != "user.registered" {
				out = append(out, n.Type)
			}
		}
		slices.Sort(out)
		return out
	}
	mailSubjects := func() []string {
		var mail struct{ Items []struct{ Subject string } }
		call(t, "GET", base+"/api/v1/admin/mail?to=alice@example.com", nil, &mail, bearer(admin)...)
		var out []string
		for _, m := range mail.Items {
			if m.Subject != "Welcome to cloudphone, alice" {
				out = append(out, m.Subject)
			}
		}
		slices.Sort(out)
		return out
	}
	hooks := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := slices.Clone(hooked)
		slices.Sort(out)
		return out
	}
	wantMail := []string{"com.example.notes could not be installed on phone " + dev, "com.example.notes is installed on phone " + dev}
	eventually(t, 20*time.Second, "each channel told once", func() bool {
		return slices.Equal(inboxTypes(), want) && slices.Equal(mailSubjects(), wantMail) && slices.Equal(hooks(), want)
	})
	// Nothing more comes of the redeliveries.
	time.Sleep(2 * time.Second)
	if got := inboxTypes(); !slices.Equal(got, want) {
		t.Fatalf("inbox: %v", got)
	}
	if got := mailSubjects(); !slices.Equal(got, wantMail) {
		t.Fatalf("mail: %v", got)
	}
	if got := hooks(); !slices.Equal(got, want) {
		t.Fatalf("webhook deliveries: %v", got)
	}
}
