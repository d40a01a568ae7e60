package notification_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/functions/notification/notificationtest"
	"github.com/cloudphone/cloudphone/shared/events"
)

func TestAppFactsTellTheUserOncePerEventInTheirOwnWords(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t)
	ctx := context.Background()
	userID, deviceID := events.NewID(), events.NewID()
	env.Record(t, notificationtest.Registered(t, userID, "ada", notificationtest.Address()))
	fact := func(reason string) deviceevents.AppFact {
		return deviceevents.AppFact{SchemaVersion: 1, DeviceID: deviceID, UserID: userID, AppID: events.NewID(),
			Package: "com.example.notes", VersionCode: 7, Reason: reason, At: time.Date(2026, 11, 30, 5, 0, 0, 0, time.UTC)}
	}
	for _, tc := range []struct {
		typ, reason, title, body string
		email                    bool
	}{
		{deviceevents.EventAppInstalled, "", "com.example.notes is installed on phone " + deviceID,
			"(version 7) was installed on your phone " + deviceID + " at 2026-11-30 05:00 UTC", false},
		{deviceevents.EventAppInstallFailed, "digest_mismatch", "com.example.notes could not be installed on phone " + deviceID,
			"failed at 2026-11-30 05:00 UTC: digest mismatch.", true},
		{deviceevents.EventAppUninstalled, "", "com.example.notes was removed from phone " + deviceID,
			"was uninstalled from your phone " + deviceID, false},
	} {
		ev := notificationtest.Event(t, tc.typ, deviceID, fact(tc.reason))
		out := env.Record(t, ev)
		if out.Duplicate || out.InApp == nil || out.Email != tc.email {
			t.Fatalf("%s: %+v, want in-app and email=%t", tc.typ, out, tc.email)
		}
		if out.InApp.Title != tc.title || !strings.Contains(out.InApp.Body, tc.body) {
			t.Fatalf("%s reads %q / %q", tc.typ, out.InApp.Title, out.InApp.Body)
		}
		if again := env.Record(t, ev); !again.Duplicate || again.InApp != nil || again.Email {
			t.Fatalf("%s redelivered did something: %+v", tc.typ, again)
		}
	}
	page, err := env.Service.List(ctx, userID, notification.ListQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 4 {
		t.Fatalf("inbox holds %d notifications, want the welcome and three app notices", len(page.Items))
	}
}

func TestAnIdleStopSaysWhyThePhoneStopped(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t)
	userID, deviceID := events.NewID(), events.NewID()
	out := env.Record(t, notificationtest.Event(t, deviceevents.EventStopped, deviceID, map[string]any{
		"schema_version": 1, "device_id": deviceID, "user_id": userID, "reason": "idle", "at": time.Now()}))
	if out.InApp == nil || out.InApp.Title != "Phone "+deviceID+" was stopped for being idle" ||
		!strings.Contains(out.InApp.Body, "no ADB connection and no use for your plan's idle limit") {
		t.Fatalf("idle stop reads %+v", out.InApp)
	}
}
