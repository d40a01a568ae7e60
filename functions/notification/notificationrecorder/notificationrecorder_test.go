package notificationrecorder_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/functions/notification/notificationrecorder"
	"github.com/cloudphone/cloudphone/functions/notification/notificationtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/logging"
)

func TestHandleMakesOneNotificationPerEventAcrossRedeliveries(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t)
	f := notificationrecorder.New(env.Service, logging.Discard())
	ctx := context.Background()
	userID := events.NewID()
	ev := notificationtest.Registered(t, userID, "frank", notificationtest.Address())
	for range 3 {
		if reply, err := f.Handle(ctx, ev); err != nil || reply != nil {
			t.Fatalf("Handle = %v, %v", reply, err)
		}
	}
	page, err := env.Service.List(ctx, userID, notification.ListQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].Title != "Welcome to cloudphone, frank" {
		t.Fatalf("inbox after three deliveries: %+v", page.Items)
	}
	emails, err := env.Service.Emails(ctx, userID)
	if err != nil || len(emails) != 1 {
		t.Fatalf("emails after three deliveries: %+v, %v", emails, err)
	}
}

func TestHandleSendsAnUnreadableEventToTheDeadLetterSink(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t)
	f := notificationrecorder.New(env.Service, logging.Discard())
	ev := notificationtest.Event(t, notificationrecorder.Consumes[0], "x", map[string]any{"user_id": 42})
	_, err := f.Handle(context.Background(), ev)
	if got := function.EventStatus(err); got != http.StatusUnprocessableEntity && got != http.StatusBadRequest {
		t.Fatalf("status = %d (%v), want a permanent 4xx", got, err)
	}
}

func TestConsumesEveryKind(t *testing.T) {
	t.Parallel()
	if len(notificationrecorder.Consumes) != len(notification.Kinds()) {
		t.Fatalf("consumes %d types for %d kinds", len(notificationrecorder.Consumes), len(notification.Kinds()))
	}
}
