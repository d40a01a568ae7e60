package notificationpreferences_test

import (
	"net/http"
	"testing"

	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/functions/notification/notificationpreferences"
	"github.com/cloudphone/cloudphone/functions/notification/notificationtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
)

func TestHandleShowsDefaultsAndSwitchesChannelsOff(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t)
	f := notificationpreferences.New(env.Service, env.Service.Verifier(), logging.Discard())
	userID := events.NewID()
	tok := env.Token(t, userID, false)
	var prefs notification.Preferences
	if code := notificationtest.Do(t, f, "GET", "/api/v1/notifications/preferences", tok, nil, &prefs); code != http.StatusOK {
		t.Fatalf("get: %d", code)
	}
	byType := map[string]notification.Channels{}
	for _, p := range prefs.Preferences {
		byType[p.Type] = p.Channels
	}
	if c := byType["user.registered"]; !c.InApp || !c.Email || !c.Webhook {
		t.Fatalf("welcome defaults: %+v", c)
	}
	if c := byType["device.running"]; !c.InApp || c.Email {
		t.Fatalf("device.running defaults: %+v", c)
	}
	body := map[string]any{"preferences": []map[string]any{{"type": "device.running", "in_app": false}}}
	if code := notificationtest.Do(t, f, "PUT", "/api/v1/notifications/preferences", tok, body, &prefs); code != http.StatusOK {
		t.Fatalf("put: %d", code)
	}
	if out := env.Record(t, notificationtest.Running(t, userID, events.NewID())); out.InApp != nil {
		t.Fatal("in-app switched off, yet a notification was made")
	}
	for name, bad := range map[string]any{
		"unknown type":  map[string]any{"preferences": []map[string]any{{"type": "nope", "email": true}}},
		"unknown field": map[string]any{"preferences": []map[string]any{{"type": "device.running", "sms": true}}},
		"empty":         map[string]any{"preferences": []map[string]any{}},
	} {
		var e notificationtest.ErrorBody
		if code := notificationtest.Do(t, f, "PUT", "/api/v1/notifications/preferences", tok, bad, &e); code != http.StatusBadRequest || e.Error.Code != "invalid" {
			t.Errorf("%s: %d %+v", name, code, e)
		}
	}
	if code := notificationtest.Do(t, f, "GET", "/api/v1/notifications/preferences", "", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", code)
	}
}
