package notificationdelivery_test

import (
	"context"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/notification/notificationdelivery"
	"github.com/cloudphone/cloudphone/functions/notification/notificationevents"
	"github.com/cloudphone/cloudphone/functions/notification/notificationtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
)

func TestHandleSendsTheQueuedEmail(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t)
	f := notificationdelivery.New(env.Service, logging.Discard())
	address := notificationtest.Address()
	env.Record(t, notificationtest.Registered(t, events.NewID(), "gina", address))
	tick := notificationtest.Event(t, notificationevents.EventDeliveryRequested, "tick", map[string]any{})
	if _, err := f.Handle(context.Background(), tick); err != nil {
		t.Fatal(err)
	}
	if n := len(env.MailTo(t, address)); n != 1 {
		t.Fatalf("mails after a tick = %d, want 1", n)
	}
}

func TestTheBackgroundWorkerSendsWithoutATick(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t)
	f := notificationdelivery.New(env.Service, logging.Discard())
	if err := f.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Stop(context.Background()) })
	address := notificationtest.Address()
	env.Record(t, notificationtest.Registered(t, events.NewID(), "hank", address))
	deadline := time.Now().Add(20 * time.Second)
	for len(env.MailTo(t, address)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the worker did not send the queued email")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := f.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}
