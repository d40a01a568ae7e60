package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/functions/scheduler"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/events"
)

// TestConsoleSettingsAndAdminEditsInTheBrowser drives, in Chromium, the
// console's notification preferences, a webhook endpoint whose delivery
// fails every retry and is sent again from its page once the endpoint
// answers, and an administrator's edits of a plan and a node; each change is
// checked through the API; the administrator sends a dead letter to the
// broker again from the admin page; and no page logs a console error or a
// Content-Security-Policy violation.
func TestConsoleSettingsAndAdminEditsInTheBrowser(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	e := newEnv(t)
	e.adminPassword = notifyAdminPassword
	e.extra = map[string]string{"WEBHOOK_ALLOW_LOOPBACK": "true", "WEBHOOK_RETRY_BACKOFF": "500ms",
		"WEBHOOK_RETRY_WINDOW": "2s", "NOTIFICATION_DELIVERY_POLL": "200ms"}
	p := start(t, e, &subscriber{})
	base := p.URL()
	ctx := browser(t)
	const password = "correct horse battery"

	alice := newTab(t, ctx, base, "alice")
	alice.signUp("alice", password)
	tok := login(t, base, "alice", password)
	var me struct{ ID string }
	if st := call(t, "GET", base+"/api/v1/users/me", nil, &me, deviceBearer(tok)...); st != 200 {
		t.Fatalf("me: %d", st)
	}

	// Preferences: email for installed apps on, the console off for
	// deleted phones.
	alice.open("/console/notifications")
	alice.wait("preferences listed", `document.querySelector('#prefs tr[data-type="app.installed"]') !== null`, 10*time.Second)
	alice.do("change two preferences",
		chromedp.Click(chromedp.CSS(`#prefs tr[data-type="app.installed"] input[name=email]`)),
		chromedp.Click(chromedp.CSS(`#prefs tr[data-type="device.deleted"] input[name=in_app]`)),
		chromedp.Click(chromedp.CSS(`#prefs-form button[type=submit]`)))
	alice.wait("preferences saved", `document.querySelector("#flash").textContent === "Preferences saved."`, 10*time.Second)
	alice.screenshot("preferences")
	var prefs notification.Preferences
	call(t, "GET", base+"/api/v1/notifications/preferences", nil, &prefs, deviceBearer(tok)...)
	for _, pr := range prefs.Preferences {
		if (pr.Type == "app.installed" && !pr.Email) || (pr.Type == "device.deleted" && pr.InApp) || (pr.Type == "user.registered" && !pr.InApp) {
			t.Fatalf("preference %+v after saving", pr)
		}
	}

	// A webhook endpoint that fails until it is fixed.
	var broken atomic.Bool
	broken.Store(true)
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		mu.Lock()
		got = append(got, r.Header.Get("Cloudphone-Event")+" "+r.Header.Get("Cloudphone-Signature"))
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	alice.open("/console/webhooks")
	alice.wait("types listed", `document.querySelector('#webhook-types input[value="app.installed"]') !== null`, 10*time.Second)
	alice.do("add an endpoint",
		chromedp.SendKeys(chromedp.CSS(`#webhook-form [name=url]`), srv.URL),
		chromedp.Click(chromedp.CSS(`#webhook-types input[value="app.installed"]`)),
		chromedp.Click(chromedp.CSS(`#webhook-form button[type=submit]`)))
	alice.wait("secret shown once", `!document.querySelector("#webhook-secret").hidden && document.querySelector("#secret").textContent.length >= 16`, 10*time.Second)
	alice.wait("endpoint listed", `document.querySelectorAll("#webhooks tbody tr[data-webhook]").length === 1`, 10*time.Second)
	alice.noError("add an endpoint")
	alice.screenshot("webhook-added")

	dev := events.NewID()
	postFact(t, p, deviceevents.EventAppInstalled, dev, deviceevents.AppFact{SchemaVersion: 1, DeviceID: dev, UserID: me.ID,
		AppID: events.NewID(), Package: "com.example.notes", VersionCode: 1, At: time.Now().UTC()})
	alice.wait("delivery given up", `(document.querySelector("#webhooks tbody button").click(), document.querySelector('#deliveries tr[data-status="failed"]') !== null)`, 30*time.Second)
	if s := eval[string](alice, `document.querySelector('#deliveries tr[data-status="failed"]').textContent`); !strings.Contains(s, "answered 502") {
		alice.fail("delivery given up", fmt.Errorf("the failed delivery reads %q", s))
	}
	alice.screenshot("delivery-failed")
	broken.Store(false)
	alice.do("send it again", chromedp.Click(chromedp.CSS(`#deliveries tr[data-status="failed"] button`)))
	alice.wait("delivered", `(document.querySelector("#webhooks tbody button").click(), document.querySelector('#deliveries tr[data-status="delivered"]') !== null)`, 30*time.Second)
	alice.noError("send again")
	mu.Lock()
	if len(got) != 1 || !strings.HasPrefix(got[0], "app.installed t=") {
		t.Errorf("the fixed endpoint received %q, want one signed app.installed delivery", got)
	}
	mu.Unlock()

	// A command its subscriber refuses for good becomes a dead letter.
	postFact(t, p, userevents.EventQuotaGrantRequested, "no-grant", map[string]any{"schema_version": 1})
	admin := login(t, base, "admin", notifyAdminPassword)
	eventually(t, 10*time.Second, "a dead letter kept", func() bool {
		var l struct{ Items []scheduler.DeadLetter }
		return call(t, "GET", base+"/api/v1/admin/dead-letters", nil, &l, deviceBearer(admin)...) == 200 && len(l.Items) == 1
	})

	// An administrator edits the Basic plan, drains the node and sends the
	// dead letter again.
	root := newTab(t, ctx, base, "admin")
	root.logIn("admin", notifyAdminPassword)
	root.open("/console/admin")
	root.wait("plans and nodes listed", `document.querySelector('[data-plan-row="basic"]') !== null && document.querySelector("#nodes tr[data-node]") !== null`, 15*time.Second)
	root.do("edit Basic",
		chromedp.SetValue(chromedp.CSS(`[data-plan-row="basic"] [name=price]`), "12.34"),
		chromedp.SetValue(chromedp.CSS(`[data-plan-row="basic"] [name=idle_minutes]`), "45"),
		chromedp.Click(chromedp.CSS(`[data-plan-row="basic"] button`)))
	root.wait("plan saved", `document.querySelector("#flash").textContent === "Plan Basic saved."`, 10*time.Second)
	root.do("drain the node",
		chromedp.SetValue(chromedp.CSS(`#nodes tr[data-node] select[name=status]`), "draining"),
		chromedp.Click(chromedp.CSS(`#nodes tr[data-node] button`)))
	root.wait("node saved", `document.querySelector("#flash").textContent.startsWith("Node ") && document.querySelector("#nodes tr[data-node] select").value === "draining"`, 10*time.Second)
	root.noError("admin edits")
	root.wait("dead letter listed", `document.querySelector("#dead-letters tr[data-dead-letter] button") !== null`, 10*time.Second)
	root.do("send the dead letter again", chromedp.Click(chromedp.CSS(`#dead-letters tr[data-dead-letter] button`)))
	root.wait("confirmation asked", `document.querySelector("#confirm").open`, 5*time.Second)
	root.do("confirm", chromedp.Click(chromedp.CSS(`#confirm-ok`)))
	root.wait("sent again", `document.querySelector("#flash").textContent === "Sent `+userevents.EventQuotaGrantRequested+` again."`, 10*time.Second)
	root.noError("dead letter sent again")
	root.screenshot("admin-edited")
	eventually(t, 10*time.Second, "the re-driven letter refused and kept again", func() bool {
		var l struct{ Items []scheduler.DeadLetter }
		return call(t, "GET", base+"/api/v1/admin/dead-letters", nil, &l, deviceBearer(admin)...) == 200 && len(l.Items) == 1 &&
			l.Items[0].Redrives == 1 && l.Items[0].RedrivenAt == nil
	})
	var plan struct {
		Price int64
		Quota struct {
			IdleMinutes int `json:"idle_minutes"`
			MaxDevices  int `json:"max_devices"`
		}
	}
	if st := call(t, "GET", base+"/api/v1/plans/basic", nil, &plan); st != 200 || plan.Price != 1234 || plan.Quota.IdleMinutes != 45 || plan.Quota.MaxDevices != 2 {
		t.Errorf("basic after the edit: %d %+v, want price 1234, 45 idle minutes and its quota kept", st, plan)
	}
	var nodes struct{ Nodes []struct{ Status string } }
	if st := call(t, "GET", base+"/api/v1/admin/nodes", nil, &nodes, deviceBearer(admin)...); st != 200 || len(nodes.Nodes) == 0 || nodes.Nodes[0].Status != "draining" {
		t.Errorf("nodes after the edit: %d %+v", st, nodes)
	}
	for _, b := range []*tab{alice, root} {
		if errs := b.consoleErrors(); len(errs) > 0 {
			t.Errorf("%s's console reported errors: %q", b.who, errs)
		}
	}
}
