package notificationinbox_test

import (
	"net/http"
	"testing"

	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/functions/notification/notificationinbox"
	"github.com/cloudphone/cloudphone/functions/notification/notificationtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
)

func TestHandleListsReadsAndReadsAllOwnNotificationsOnly(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t)
	f := notificationinbox.New(env.Service, env.Service.Verifier(), logging.Discard())
	alice, bob := events.NewID(), events.NewID()
	aliceTok, bobTok := env.Token(t, alice, false), env.Token(t, bob, false)
	for range 3 {
		env.Record(t, notificationtest.Running(t, alice, events.NewID()))
	}
	bobs := env.Record(t, notificationtest.Running(t, bob, events.NewID())).InApp

	var page notification.Page
	if code := notificationtest.Do(t, f, "GET", "/api/v1/notifications?limit=2", aliceTok, nil, &page); code != http.StatusOK {
		t.Fatalf("list: %d", code)
	}
	if len(page.Items) != 2 || page.UnreadCount != 3 || page.NextCursor == "" {
		t.Fatalf("first page: %+v", page)
	}
	var n notification.Notification
	if code := notificationtest.Do(t, f, "POST", "/api/v1/notifications/"+page.Items[0].ID+"/read", aliceTok, nil, &n); code != http.StatusOK || n.ReadAt == nil {
		t.Fatalf("read: %d %+v", code, n)
	}
	var e notificationtest.ErrorBody
	if code := notificationtest.Do(t, f, "POST", "/api/v1/notifications/"+bobs.ID+"/read", aliceTok, nil, &e); code != http.StatusNotFound || e.Error.Code != "not_found" {
		t.Fatalf("reading bob's notification as alice: %d %+v", code, e)
	}
	if code := notificationtest.Do(t, f, "GET", "/api/v1/notifications?unread=true", aliceTok, nil, &page); code != http.StatusOK || len(page.Items) != 2 {
		t.Fatalf("unread: %d %+v", code, page)
	}
	var all notification.ReadAll
	if code := notificationtest.Do(t, f, "POST", "/api/v1/notifications/read-all", aliceTok, nil, &all); code != http.StatusOK || all.Updated != 2 {
		t.Fatalf("read-all: %d %+v", code, all)
	}
	if code := notificationtest.Do(t, f, "GET", "/api/v1/notifications?unread=true", bobTok, nil, &page); code != http.StatusOK || len(page.Items) != 1 {
		t.Fatalf("bob's unread after alice's read-all: %d %+v", code, page)
	}
	for _, c := range []struct {
		path, token string
		status      int
	}{
		{"/api/v1/notifications", "", http.StatusUnauthorized},
		{"/api/v1/notifications?unread=maybe", aliceTok, http.StatusBadRequest},
		{"/api/v1/notifications?limit=1000", aliceTok, http.StatusBadRequest},
		{"/api/v1/notifications?cursor=zz", aliceTok, http.StatusBadRequest},
	} {
		if code := notificationtest.Do(t, f, "GET", c.path, c.token, nil, nil); code != c.status {
			t.Errorf("GET %s: %d, want %d", c.path, code, c.status)
		}
	}
}
