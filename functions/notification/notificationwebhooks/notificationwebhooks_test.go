package notificationwebhooks_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/functions/notification/notificationtest"
	"github.com/cloudphone/cloudphone/functions/notification/notificationwebhooks"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
)

func TestHandleManagesOwnWebhooksAndTheirDeliveries(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t, func(c *notification.Config) { c.WebhookAllowLoopback = true })
	f := notificationwebhooks.New(env.Service, env.Service.Verifier(), logging.Discard())
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		hits.Add(1)
	}))
	t.Cleanup(srv.Close)
	alice, bob := events.NewID(), events.NewID()
	aliceTok, bobTok := env.Token(t, alice, false), env.Token(t, bob, false)

	var created notification.WebhookCreated
	body := map[string]any{"url": srv.URL + "/in", "event_types": []string{"device.running"}}
	if code := notificationtest.Do(t, f, "POST", "/api/v1/webhooks", aliceTok, body, &created); code != http.StatusCreated || created.Secret == "" {
		t.Fatalf("create: %d %+v", code, created)
	}
	var got map[string]any
	if code := notificationtest.Do(t, f, "GET", "/api/v1/webhooks/"+created.ID, aliceTok, nil, &got); code != http.StatusOK {
		t.Fatalf("get: %d", code)
	}
	if _, shown := got["secret"]; shown {
		t.Fatal("the secret is shown again after creation")
	}
	var list struct{ Items []notification.Webhook }
	if code := notificationtest.Do(t, f, "GET", "/api/v1/webhooks", bobTok, nil, &list); code != http.StatusOK || len(list.Items) != 0 {
		t.Fatalf("bob's list: %d %+v", code, list)
	}
	if code := notificationtest.Do(t, f, "GET", "/api/v1/webhooks/"+created.ID+"/deliveries", bobTok, nil, nil); code != http.StatusNotFound {
		t.Fatalf("bob reads alice's deliveries: %d", code)
	}

	env.Record(t, notificationtest.Running(t, alice, events.NewID()))
	if _, err := env.Service.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	var page notification.DeliveryPage
	if code := notificationtest.Do(t, f, "GET", "/api/v1/webhooks/"+created.ID+"/deliveries", aliceTok, nil, &page); code != http.StatusOK {
		t.Fatalf("deliveries: %d", code)
	}
	if len(page.Items) != 1 || page.Items[0].Status != "delivered" || len(page.Items[0].Attempts) != 1 || hits.Load() != 1 {
		t.Fatalf("deliveries: %+v, endpoint hits %d", page.Items, hits.Load())
	}
	var resent notification.Delivery
	path := "/api/v1/webhooks/" + created.ID + "/deliveries/" + page.Items[0].ID + "/resend"
	if code := notificationtest.Do(t, f, "POST", path, aliceTok, nil, &resent); code != http.StatusAccepted || resent.Status != "pending" {
		t.Fatalf("resend: %d %+v", code, resent)
	}
	if code := notificationtest.Do(t, f, "POST", path, bobTok, nil, nil); code != http.StatusNotFound {
		t.Fatalf("bob resends alice's delivery: %d", code)
	}
	if _, err := env.Service.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	if hits.Load() != 2 {
		t.Fatalf("endpoint hits after a resend = %d, want 2", hits.Load())
	}

	var e notificationtest.ErrorBody
	bad := map[string]any{"url": "http://169.254.169.254/latest/meta-data/", "event_types": []string{"device.running"}}
	if code := notificationtest.Do(t, f, "POST", "/api/v1/webhooks", aliceTok, bad, &e); code != http.StatusBadRequest || e.Error.Code != "invalid" {
		t.Fatalf("metadata address: %d %+v", code, e)
	}
	var updated notification.Webhook
	if code := notificationtest.Do(t, f, "PUT", "/api/v1/webhooks/"+created.ID, aliceTok, map[string]any{"event_types": []string{"device.error", "device.stopped"}}, &updated); code != http.StatusOK || len(updated.EventTypes) != 2 {
		t.Fatalf("update: %d %+v", code, updated)
	}
	if code := notificationtest.Do(t, f, "DELETE", "/api/v1/webhooks/"+created.ID, bobTok, nil, nil); code != http.StatusNotFound {
		t.Fatalf("bob deletes alice's webhook: %d", code)
	}
	if code := notificationtest.Do(t, f, "DELETE", "/api/v1/webhooks/"+created.ID, aliceTok, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if code := notificationtest.Do(t, f, "GET", "/api/v1/webhooks/"+created.ID, aliceTok, nil, nil); code != http.StatusNotFound {
		t.Fatalf("get after delete: %d", code)
	}
}
