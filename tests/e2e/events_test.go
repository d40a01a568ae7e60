package e2e

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/eventauth"
)

// The user.registered event leaves auth-register through the outbox, goes
// through the embedded broker and a Trigger to a subscriber; the same event
// delivered again changes nothing.
func TestRegisteredEventReachesItsSubscriberOnceEvenWhenRedelivered(t *testing.T) {
	t.Parallel()
	sub := &subscriber{}
	p := start(t, newEnv(t), sub)
	u := register(t, p.URL(), "alice")

	var raw []byte
	eventually(t, 10*time.Second, "the subscriber never received user.registered", func() bool {
		var n int
		n, raw = sub.received(t, u.ID)
		return n == 1
	})
	if !strings.Contains(string(raw), `"correlationid"`) {
		t.Errorf("the event carries no correlationid: %s", raw)
	}

	// Redeliver the very same event (same source and id) through the broker.
	before := sub.attempts.Load()
	req, _ := http.NewRequest("POST", p.URL()+"/broker/cloudphone", bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/cloudevents+json")
	p.authorize(t, req, producerOf(t, userevents.EventRegistered), eventauth.BrokerAudience)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("broker ingress answered %d, want 202", resp.StatusCode)
	}
	eventually(t, 10*time.Second, "the duplicate was never delivered", func() bool { return sub.attempts.Load() > before })
	if n, _ := sub.received(t, u.ID); n != 1 {
		t.Fatalf("after a duplicate delivery the subscriber holds %d records, want 1", n)
	}
}

// An event the subscriber cannot take yet stays in the broker's table across a
// shutdown of the whole platform and is delivered after the restart.
func TestUndeliveredEventSurvivesARestartOfThePlatform(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	down := &subscriber{}
	down.fail.Store(true)
	p := start(t, e, down)
	u := register(t, p.URL(), "bob")
	eventually(t, 10*time.Second, "the failing subscriber was never tried", func() bool { return down.attempts.Load() >= 1 })
	p.stop(t)

	up := &subscriber{}
	p = start(t, e, up)
	eventually(t, 15*time.Second, "the event was lost across the restart", func() bool {
		n, _ := up.received(t, u.ID)
		return n == 1
	})
}

// Bad input at the edges gets a clear error with a stable code.
func TestBrokerAndFunctionsRefuseBadEventsClearly(t *testing.T) {
	t.Parallel()
	p := start(t, newEnv(t), &subscriber{})
	cases := []struct {
		name, path, contentType string
		header                  map[string]string
		body                    string
		status                  int
		code                    string
	}{
		{"malformed structured event", "/broker/cloudphone", "application/cloudevents+json", nil, `{"specversion":"1.0"`, 400, "invalid"},
		{"binary event without id", "/broker/cloudphone", "application/json",
			map[string]string{"Ce-Specversion": "1.0", "Ce-Type": "cloudphone.x.y", "Ce-Source": "/t"}, `{}`, 400, "invalid"},
		{"event over the size limit", "/broker/cloudphone", "application/json",
			map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "1", "Ce-Type": "cloudphone.x.y", "Ce-Source": "/t"},
			`"` + strings.Repeat("x", 2<<20) + `"`, 413, "too_large"},
		{"unknown event type at a function", "/function/user-outbox-redrive", "application/json",
			map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "1", "Ce-Type": "cloudphone.nobody.listens", "Ce-Source": "/t"}, `{}`, 400, "invalid"},
		{"unknown function", "/function/no-such-function", "application/json", nil, `{}`, 404, "not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", p.URL()+c.path, strings.NewReader(c.body))
			req.Header.Set("Content-Type", c.contentType)
			for k, v := range c.header {
				req.Header.Set(k, v)
			}
			// A valid sender, so that what is refused is the event itself.
			if fn, ok := strings.CutPrefix(c.path, "/function/"); ok {
				p.authorize(t, req, eventauth.Broker, fn)
			} else {
				p.authorize(t, req, "user", eventauth.BrokerAudience)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Error struct{ Code string } `json:"error"`
			}
			_ = decodeJSON(resp, &body)
			if resp.StatusCode != c.status || body.Error.Code != c.code {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body.Error.Code, c.status, c.code)
			}
		})
	}
}
