package notification_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/functions/notification/notificationtest"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/webhooksig"
)

// endpoint is a webhook receiver that answers with the statuses given, in
// order (the last one from then on), and keeps every request.
type endpoint struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	got      []received
}

type received struct {
	header http.Header
	body   []byte
}

func newEndpoint(t *testing.T, statuses ...int) *endpoint {
	t.Helper()
	e := &endpoint{statuses: statuses}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		e.got = append(e.got, received{r.Header.Clone(), body})
		status := e.statuses[min(len(e.got), len(e.statuses))-1]
		e.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) requests() []received {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]received(nil), e.got...)
}

func allowLoopback(c *notification.Config) { c.WebhookAllowLoopback = true }

func createWebhook(t *testing.T, env notificationtest.Env, userID, url string, types ...string) notification.WebhookCreated {
	t.Helper()
	w, err := env.Service.CreateWebhook(context.Background(), userID, notification.WebhookRequest{URL: &url, EventTypes: types})
	if err != nil {
		t.Fatalf("create webhook: %v", err)
	}
	return w
}

func TestWebhookDeliveriesAreSignedAndRetriedUntilTheEndpointTakesThem(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t, allowLoopback)
	ctx := context.Background()
	srv := newEndpoint(t, http.StatusInternalServerError, http.StatusOK)
	userID := events.NewID()
	hook := createWebhook(t, env, userID, srv.URL+"/hooks", "device.running")
	if !strings.HasPrefix(hook.Secret, "whsec_") {
		t.Fatalf("secret %q", hook.Secret)
	}
	ev := notificationtest.Running(t, userID, events.NewID())
	if out := env.Record(t, ev); out.Webhooks != 1 {
		t.Fatalf("deliveries queued = %d, want 1", out.Webhooks)
	}
	if out := env.Record(t, notificationtest.OrderFailed(t, userID, "timeout")); out.Webhooks != 0 {
		t.Fatalf("a type the endpoint did not subscribe to was queued for it")
	}
	if _, err := env.Service.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.requests()); n != 1 {
		t.Fatalf("requests after the first drain = %d, want 1", n)
	}
	env.Clock.Advance(time.Minute)
	if _, err := env.Service.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	reqs := srv.requests()
	if len(reqs) != 2 {
		t.Fatalf("requests after the retry = %d, want 2", len(reqs))
	}
	for i, r := range reqs {
		sig := r.header.Get(webhooksig.Header)
		tsPart, _, _ := strings.Cut(sig, ",")
		unix, err := strconv.ParseInt(strings.TrimPrefix(tsPart, "t="), 10, 64)
		if err != nil {
			t.Fatalf("request %d: signature %q", i, sig)
		}
		// The same scheme as the inbound payment webhook: t=<unix>,v1=<hex
		// HMAC-SHA256 of "<unix>.<body>">, computed here independently.
		m := hmac.New(sha256.New, []byte(hook.Secret))
		m.Write([]byte(strconv.FormatInt(unix, 10) + "."))
		m.Write(r.body)
		if want := "t=" + strconv.FormatInt(unix, 10) + ",v1=" + hex.EncodeToString(m.Sum(nil)); sig != want {
			t.Fatalf("request %d: signature %q, want %q", i, sig, want)
		}
		var p notification.WebhookPayload
		if err := json.Unmarshal(r.body, &p); err != nil || p.ID != ev.ID() || p.Type != "device.running" || p.UserID != userID {
			t.Fatalf("request %d: payload %s (%v)", i, r.body, err)
		}
		if r.header.Get(notification.EventHeader) != "device.running" || r.header.Get(notification.DeliveryHeader) == "" {
			t.Fatalf("request %d: headers %v", i, r.header)
		}
	}
	page, err := env.Service.Deliveries(ctx, userID, hook.ID, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 {
		t.Fatalf("deliveries = %d, want 1", len(page.Items))
	}
	d := page.Items[0]
	if d.Status != "delivered" || len(d.Attempts) != 2 || d.Attempts[0].StatusCode != 500 || d.Attempts[1].StatusCode != 200 {
		t.Fatalf("delivery: %+v", d)
	}

	resent, err := env.Service.Resend(ctx, userID, hook.ID, d.ID)
	if err != nil || resent.Status != "pending" {
		t.Fatalf("resend: %+v, %v", resent, err)
	}
	if _, err := env.Service.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.requests()); n != 3 {
		t.Fatalf("requests after a resend = %d, want 3", n)
	}
	if _, err := env.Service.Resend(ctx, events.NewID(), hook.ID, d.ID); !apierr.Is(err, apierr.NotFound) {
		t.Fatalf("another user's resend: err = %v, want not_found", err)
	}
}

func TestWebhookDeliveryFailsWhenItsRetryWindowIsOver(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t, allowLoopback, func(c *notification.Config) {
		c.WebhookWindow, c.WebhookBackoff, c.WebhookMaxBackoff = 3*time.Minute, time.Minute, time.Hour
	})
	ctx := context.Background()
	srv := newEndpoint(t, http.StatusServiceUnavailable)
	userID := events.NewID()
	hook := createWebhook(t, env, userID, srv.URL, "device.running")
	env.Record(t, notificationtest.Running(t, userID, events.NewID()))
	// Attempts at 0, 1 and 3 minutes; the next would be at 7, after the
	// window's end at 3.
	for _, step := range []time.Duration{0, time.Minute, 2 * time.Minute, time.Hour} {
		env.Clock.Advance(step)
		if _, err := env.Service.Drain(ctx); err != nil {
			t.Fatal(err)
		}
	}
	page, err := env.Service.Deliveries(ctx, userID, hook.ID, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	d := page.Items[0]
	if d.Status != "failed" || len(d.Attempts) != 3 || !strings.Contains(d.LastError, "503") {
		t.Fatalf("delivery after its window: status %s, %d attempts, %q", d.Status, len(d.Attempts), d.LastError)
	}
	if n := len(srv.requests()); n != 3 {
		t.Fatalf("endpoint saw %d requests, want 3", n)
	}
}

func TestWebhookRegistrationRefusesPrivateTargets(t *testing.T) {
	t.Parallel()
	strict := notificationtest.New(t)
	loose := notificationtest.New(t, allowLoopback)
	userID := events.NewID()
	refused := []string{
		"http://127.0.0.1/hook", "http://localhost:8080/hook", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
		"http://10.1.2.3/", "http://172.16.5.5/", "http://192.168.0.10/", "http://[fd00:ec2::254]/",
		"http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://100.100.100.200/", "http://0.0.0.0/",
		"ftp://example.com/", "http://user:pw@93.184.215.14/", "/relative", "http://93.184.215.14/#frag",
	}
	for _, u := range refused {
		_, err := strict.Service.CreateWebhook(context.Background(), userID, notification.WebhookRequest{URL: &u, EventTypes: []string{"device.running"}})
		if !apierr.Is(err, apierr.Invalid) {
			t.Errorf("%s: err = %v, want invalid", u, err)
		}
	}
	for _, u := range []string{"http://10.1.2.3/", "http://169.254.169.254/"} {
		if _, err := loose.Service.CreateWebhook(context.Background(), userID, notification.WebhookRequest{URL: &u, EventTypes: []string{"device.running"}}); !apierr.Is(err, apierr.Invalid) {
			t.Errorf("with loopback allowed, %s: err = %v, want invalid", u, err)
		}
	}
	public := "https://93.184.215.14/hook"
	if _, err := strict.Service.CreateWebhook(context.Background(), userID, notification.WebhookRequest{URL: &public, EventTypes: []string{"device.running"}}); err != nil {
		t.Errorf("a public address is refused: %v", err)
	}
	loop := "http://127.0.0.1:1/hook"
	if _, err := loose.Service.CreateWebhook(context.Background(), userID, notification.WebhookRequest{URL: &loop, EventTypes: []string{"device.running"}}); err != nil {
		t.Errorf("loopback refused with the test setting: %v", err)
	}
	if _, err := strict.Service.CreateWebhook(context.Background(), userID, notification.WebhookRequest{URL: &public, EventTypes: []string{"no.such"}}); !apierr.Is(err, apierr.Invalid) {
		t.Errorf("unknown event type: err = %v, want invalid", err)
	}
}

func TestWebhookDeliveryChecksTheAddressItDials(t *testing.T) {
	t.Parallel()
	// An endpoint registered while its name resolved to a public address
	// whose name now resolves to loopback (DNS rebinding) is refused when
	// it is dialed: the row below stands for it.
	env := notificationtest.New(t)
	ctx := context.Background()
	srv := newEndpoint(t, http.StatusOK)
	userID := events.NewID()
	hookID := events.NewID()
	if _, err := env.Pool.Exec(ctx, `INSERT INTO webhooks (id, user_id, url, event_types, secret) VALUES ($1, $2, $3, $4, 'whsec_x')`,
		hookID, userID, srv.URL, []string{"device.running"}); err != nil {
		t.Fatal(err)
	}
	env.Record(t, notificationtest.Running(t, userID, events.NewID()))
	if _, err := env.Service.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.requests()); n != 0 {
		t.Fatalf("the endpoint on loopback got %d requests", n)
	}
	page, err := env.Service.Deliveries(ctx, userID, hookID, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if a := page.Items[0].Attempts; len(a) != 1 || !strings.Contains(a[0].Error, notification.ErrRefusedAddress.Error()) {
		t.Fatalf("attempts: %+v", a)
	}
}

func TestWebhooksAreOwnOnlyAndLimitedPerUser(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t, allowLoopback) // MaxWebhooks 3
	ctx := context.Background()
	alice, bob := events.NewID(), events.NewID()
	var first notification.WebhookCreated
	for i := range 3 {
		w := createWebhook(t, env, alice, "http://127.0.0.1:1/"+strconv.Itoa(i), "device.running", "device.running", "device.error")
		if i == 0 {
			first = w
		}
		if len(w.EventTypes) != 2 {
			t.Fatalf("event types not de-duplicated: %v", w.EventTypes)
		}
	}
	u := "http://127.0.0.1:1/4"
	if _, err := env.Service.CreateWebhook(ctx, alice, notification.WebhookRequest{URL: &u, EventTypes: []string{"device.running"}}); !apierr.Is(err, apierr.QuotaExceeded) {
		t.Fatalf("fourth webhook: err = %v, want quota_exceeded", err)
	}
	if _, err := env.Service.WebhookOf(ctx, bob, first.ID); !apierr.Is(err, apierr.NotFound) {
		t.Fatalf("bob reads alice's webhook: %v", err)
	}
	if err := env.Service.DeleteWebhook(ctx, bob, first.ID); !apierr.Is(err, apierr.NotFound) {
		t.Fatalf("bob deletes alice's webhook: %v", err)
	}
	off := false
	w, err := env.Service.UpdateWebhook(ctx, alice, first.ID, notification.WebhookRequest{Active: &off})
	if err != nil || w.Active {
		t.Fatalf("deactivate: %+v, %v", w, err)
	}
	if out := env.Record(t, notificationtest.Running(t, alice, events.NewID())); out.Webhooks != 2 {
		t.Fatalf("deliveries queued = %d, want 2 (the inactive endpoint gets none)", out.Webhooks)
	}
	if err := env.Service.DeleteWebhook(ctx, alice, first.ID); err != nil {
		t.Fatal(err)
	}
	list, err := env.Service.Webhooks(ctx, alice)
	if err != nil || len(list) != 2 {
		t.Fatalf("list after delete: %d, %v", len(list), err)
	}
}

func TestAllowedIPAdmitsOnlyPublicUnicast(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		strict, loose bool
	}{
		"93.184.215.14":   {true, true},
		"2606:4700::1111": {true, true},
		"127.0.0.1":       {false, true},
		"::1":             {false, true},
		"::ffff:10.0.0.1": {false, false},
		"10.0.0.1":        {false, false},
		"169.254.169.254": {false, false},
		"fe80::1":         {false, false},
		"fc00::1":         {false, false},
		"100.64.0.1":      {false, false},
		"224.0.0.1":       {false, false},
		"0.0.0.0":         {false, false},
		"::":              {false, false},
		"64:ff9b::a00:1":  {false, false},
	}
	for s, want := range cases {
		ip := netip.MustParseAddr(s)
		if got := notification.AllowedIP(ip, false); got != want.strict {
			t.Errorf("AllowedIP(%s, false) = %v", s, got)
		}
		if got := notification.AllowedIP(ip, true); got != want.loose {
			t.Errorf("AllowedIP(%s, true) = %v", s, got)
		}
	}
}
