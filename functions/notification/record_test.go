package notification_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/functions/notification/notificationtest"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/maildrop"
)

func TestRecordMakesOneNotificationWhenTheEventIsRedelivered(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t)
	ctx := context.Background()
	userID := events.NewID()
	ev := notificationtest.Registered(t, userID, "alice", notificationtest.Address())

	first := env.Record(t, ev)
	if first.Duplicate || first.InApp == nil || first.InApp.Seq != 1 || !first.Email {
		t.Fatalf("first delivery: %+v", first)
	}
	again := env.Record(t, ev)
	if !again.Duplicate || again.InApp != nil || again.Email {
		t.Fatalf("redelivery did something: %+v", again)
	}
	page, err := env.Service.List(ctx, userID, notification.ListQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.UnreadCount != 1 {
		t.Fatalf("inbox after a redelivery = %d items, %d unread; want 1, 1", len(page.Items), page.UnreadCount)
	}
	emails, err := env.Service.Emails(ctx, userID)
	if err != nil {
		t.Fatal(err)
	}
	if len(emails) != 1 {
		t.Fatalf("emails queued = %d, want 1", len(emails))
	}
}

func TestRecordNumbersAUsersNotificationsWithoutGaps(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t)
	userID := events.NewID()
	for i := int64(1); i <= 5; i++ {
		out := env.Record(t, notificationtest.Running(t, userID, events.NewID()))
		if out.InApp == nil || out.InApp.Seq != i {
			t.Fatalf("notification %d numbered %+v", i, out.InApp)
		}
	}
	other := env.Record(t, notificationtest.Running(t, events.NewID(), events.NewID()))
	if other.InApp.Seq != 1 {
		t.Fatalf("another user's first notification has seq %d, want 1", other.InApp.Seq)
	}
}

func TestRecordRendersTheWelcomeAndEscapesUserDataInTheHTMLEmail(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t)
	ctx := context.Background()
	userID, address := events.NewID(), notificationtest.Address()
	env.Record(t, notificationtest.Registered(t, userID, "alice", address))
	// A reason is producer data that may carry markup.
	out := env.Record(t, notificationtest.OrderFailed(t, userID, `<script>alert(1)</script>`))
	if !strings.Contains(out.InApp.Body, "<script>alert(1)</script>") {
		t.Fatalf("the in-app text keeps text as text: %q", out.InApp.Body)
	}
	if _, err := env.Service.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	mails := env.MailTo(t, address)
	if len(mails) != 2 {
		t.Fatalf("mails to %s = %d, want 2", address, len(mails))
	}
	var welcome, failed maildrop.Parsed
	for _, m := range mails {
		p, err := maildrop.Parse(m.Raw)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(p.Subject, "Welcome") {
			welcome = p
		} else {
			failed = p
		}
	}
	if welcome.Subject != "Welcome to cloudphone, alice" || !strings.Contains(welcome.Text, "Hello alice") ||
		!strings.Contains(welcome.HTML, "<h1") {
		t.Fatalf("welcome email: %+v", welcome)
	}
	if strings.Contains(failed.HTML, "<script>") || !strings.Contains(failed.HTML, "&lt;script&gt;") {
		t.Fatalf("the HTML email does not escape the reason: %s", failed.HTML)
	}
}

func TestRecordRefusesAnUnreadableEventPermanently(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t)
	cases := map[string]struct {
		typ  string
		data any
	}{
		"unknown type":     {"cloudphone.user.unheard.of", map[string]string{}},
		"user id not uuid": {deviceevents.EventRunning, map[string]any{"user_id": "bob", "device_id": "d"}},
		"data not object":  {deviceevents.EventRunning, "a string"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := env.Service.Record(context.Background(), notificationtest.Event(t, c.typ, "x", c.data))
			if !apierr.Is(err, apierr.Unprocessable) {
				t.Fatalf("err = %v, want unprocessable", err)
			}
		})
	}
}

func TestPreferencesSwitchChannelsOff(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t)
	ctx := context.Background()
	userID, address := events.NewID(), notificationtest.Address()
	env.Record(t, notificationtest.Registered(t, userID, "carol", address))
	off := false
	prefs, err := env.Service.SetPreferences(ctx, userID, notification.PreferenceUpdate{Preferences: []notification.PreferenceChange{
		{Type: "billing.order.failed", InApp: &off, Email: &off},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range prefs.Preferences {
		if p.Type == "billing.order.failed" && (p.InApp || p.Email || !p.Webhook) {
			t.Fatalf("preference after the change: %+v", p)
		}
	}
	out := env.Record(t, notificationtest.OrderFailed(t, userID, "insufficient_funds"))
	if out.InApp != nil || out.Email {
		t.Fatalf("a switched-off type still notified: %+v", out)
	}
	if _, err := env.Service.SetPreferences(ctx, userID, notification.PreferenceUpdate{Preferences: []notification.PreferenceChange{
		{Type: "billing.order.failed", InApp: &off}, {Type: "no.such.type", Email: &off},
	}}); !apierr.Is(err, apierr.Invalid) {
		t.Fatalf("unknown type: err = %v, want invalid", err)
	}
	prefs, err = env.Service.PreferencesOf(ctx, userID)
	if err != nil {
		t.Fatal(err)
	}
	if len(prefs.Preferences) != len(notification.Kinds()) {
		t.Fatalf("preferences list %d types, want %d", len(prefs.Preferences), len(notification.Kinds()))
	}
}

func TestInboxIsOwnOnlyAndPaged(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t)
	ctx := context.Background()
	alice, bob := events.NewID(), events.NewID()
	var ids []string
	for range 5 {
		ids = append(ids, env.Record(t, notificationtest.Running(t, alice, events.NewID())).InApp.ID)
	}
	bobs := env.Record(t, notificationtest.Running(t, bob, events.NewID())).InApp
	if _, err := env.Service.MarkRead(ctx, alice, bobs.ID); !apierr.Is(err, apierr.NotFound) {
		t.Fatalf("reading another user's notification: err = %v, want not_found", err)
	}
	n, err := env.Service.MarkRead(ctx, alice, ids[0])
	if err != nil || n.ReadAt == nil {
		t.Fatalf("mark read: %+v, %v", n, err)
	}
	page, err := env.Service.List(ctx, alice, notification.ListQuery{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 2 || page.Items[0].Seq != 5 || page.NextCursor == "" || page.UnreadCount != 4 {
		t.Fatalf("first page: %+v", page)
	}
	var seqs []int64
	for cursor := ""; ; {
		p, err := env.Service.List(ctx, alice, notification.ListQuery{Limit: 2, Cursor: cursor, UnreadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Items {
			seqs = append(seqs, it.Seq)
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if len(seqs) != 4 || seqs[0] != 5 || seqs[3] != 2 {
		t.Fatalf("unread seqs over pages = %v, want 5 4 3 2", seqs)
	}
	all, err := env.Service.MarkAllRead(ctx, alice)
	if err != nil || all.Updated != 4 {
		t.Fatalf("read-all = %+v, %v; want 4 updated", all, err)
	}
	bobPage, err := env.Service.List(ctx, bob, notification.ListQuery{UnreadOnly: true})
	if err != nil || len(bobPage.Items) != 1 {
		t.Fatalf("bob's inbox changed with alice's read-all: %+v, %v", bobPage, err)
	}
	if _, err := env.Service.List(ctx, alice, notification.ListQuery{Cursor: "x"}); !apierr.Is(err, apierr.Invalid) {
		t.Fatalf("bad cursor: err = %v, want invalid", err)
	}
}
