// Package notificationdelivery is the notification-delivery function: it sends the
// queued emails and webhook deliveries, with retries and backoff.
package notificationdelivery

import (
	"context"
	"log/slog"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/functions/notification/notificationevents"
	"github.com/cloudphone/cloudphone/shared/function"
)

// Name is the function's name in the catalog.
const Name = "notification-delivery"

// Consumes is the tick the function's schedule sends.
var Consumes = []string{notificationevents.EventDeliveryRequested}

// Schedule drains every minute even where no worker runs between ticks.
const Schedule = "* * * * *"

// Function drains on every tick (Handle) and, while its process runs, in
// the background from Start to Stop (notification.Service.RunDelivery:
// woken at once when an email or delivery is queued). Safe for concurrent
// use.
type Function struct {
	svc *notification.Service
	log *slog.Logger
	bg  function.Background
}

// New returns the function over svc. It panics when an argument is nil.
func New(svc *notification.Service, log *slog.Logger) *Function {
	if svc == nil || log == nil {
		panic("notificationdelivery: New needs a notification.Service and a logger")
	}
	return &Function{svc: svc, log: log}
}

// Start runs the background worker until Stop.
func (f *Function) Start(_ context.Context, _ map[string]string) error {
	return f.bg.Go(func(ctx context.Context) { _ = f.svc.RunDelivery(ctx) })
}

// Stop ends the background worker, waiting for the send in flight.
func (f *Function) Stop(ctx context.Context) error { return f.bg.Stop(ctx) }

// Handle drains what is due; a database failure is retried.
func (f *Function) Handle(ctx context.Context, _ event.Event) (*event.Event, error) {
	d, err := f.svc.Drain(ctx)
	if err != nil {
		return nil, err
	}
	f.log.DebugContext(ctx, "deliveries drained", "emails", d.Emails, "webhooks", d.Deliveries)
	return nil, nil
}
