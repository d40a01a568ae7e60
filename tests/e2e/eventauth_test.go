package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/eventauth"
	"github.com/cloudphone/cloudphone/shared/events"
)

// Forged quota grants, to the broker or straight to the function, from this
// machine's own address, are refused for their sender and change nothing:
// without a token 401, with another key's token 401, with a token of a
// context the event policy does not allow (or of anyone but the broker at the
// function) 403. The refusals are counted; the real producer's grant still
// goes through.
func TestForgedEventsAreRefusedForTheirSenderAndChangeNothing(t *testing.T) {
	t.Parallel()
	p := startWithAdmin(t)
	base := p.URL()
	alice := register(t, base, "alice")
	aliceToken := login(t, base, "alice", "correct horse battery")
	bearer := []string{"Authorization", "Bearer " + aliceToken}

	grant := userevents.QuotaGrantRequested{SchemaVersion: 1, GrantID: "forged-1", UserID: alice.ID, PlanID: "pro",
		Limits: userevents.Limits{MaxDevices: 1000, MaxRunningDevices: 1000, MaxCPUCores: 8, MaxMemoryMB: 8192, MaxStorageGB: 64, DeviceMaxCPUCores: 4, DeviceMaxMemoryMB: 4096}}
	_, foreignKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := eventauth.NewSigner(foreignKey)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		path   string
		auth   func(*http.Request)
		status int
	}{
		{"broker, no token", "/broker/cloudphone", func(*http.Request) {}, 401},
		{"broker, token of another key", "/broker/cloudphone", func(r *http.Request) {
			_ = foreign.Authorize(r, "billing", eventauth.BrokerAudience)
		}, 401},
		{"broker, a context that may not send it", "/broker/cloudphone", func(r *http.Request) {
			p.authorize(t, r, "device", eventauth.BrokerAudience)
		}, 403},
		{"function, no token", "/function/user-quota-grants", func(*http.Request) {}, 401},
		{"function, the broker's token for the broker", "/function/user-quota-grants", func(r *http.Request) {
			p.authorize(t, r, eventauth.Broker, eventauth.BrokerAudience)
		}, 401},
		{"function, the producer itself", "/function/user-quota-grants", func(r *http.Request) {
			p.authorize(t, r, "billing", "user-quota-grants")
		}, 403},
		{"bundle path, no token", "/", func(*http.Request) {}, 401},
	}
	for _, c := range cases {
		e, err := events.New(context.Background(), userevents.EventQuotaGrantRequested, "/cloudphone/billing/forged", grant.GrantID, grant)
		if err != nil {
			t.Fatal(err)
		}
		req, err := cehttp.NewHTTPRequestFromEvent(context.Background(), base+c.path, e)
		if err != nil {
			t.Fatal(err)
		}
		c.auth(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s: answered %d %s, want %d", c.name, resp.StatusCode, body, c.status)
		}
	}

	// Give a forged event that slipped through time to take effect.
	time.Sleep(time.Second)
	var q user.Quota
	call(t, "GET", base+"/api/v1/quotas/me", nil, &q, bearer...)
	if q.Limits != user.FreeTier {
		t.Fatalf("a forged grant changed alice's quota: %+v", q.Limits)
	}
	metrics := get(t, p.MetricsURL())
	for _, want := range []string{
		`cloudphone_events_refused_total{reason="unauthenticated",receiver="broker"} 2`,
		`cloudphone_events_refused_total{reason="forbidden",receiver="broker"} 1`,
		`cloudphone_events_refused_total{reason="unauthenticated",receiver="user-quota-grants"} 3`,
		`cloudphone_events_refused_total{reason="forbidden",receiver="user-quota-grants"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// The producer the catalog names is admitted.
	e, err := events.New(context.Background(), userevents.EventQuotaGrantRequested, "/cloudphone/billing/e2e", "real-1", grant)
	if err != nil {
		t.Fatal(err)
	}
	if status := p.sendEvent(t, e); status != http.StatusAccepted {
		t.Fatalf("billing's own grant: %d", status)
	}
	eventually(t, 10*time.Second, "the real grant never arrived", func() bool {
		q = user.Quota{}
		call(t, "GET", base+"/api/v1/quotas/me", nil, &q, bearer...)
		return q.Limits == user.FreeTier.Plus(grant.Limits)
	})
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
