// Package notificationrecorder is the notification-recorder function: it turns the
// other contexts' facts into notifications (see notification.Kinds).
package notificationrecorder

import (
	"context"
	"log/slog"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/functions/notification"
)

// Name is the function's name in the catalog.
const Name = "notification-recorder"

// Consumes are the facts the function turns into notifications.
var Consumes = notification.EventTypes()

// Function records each fact once with notification.Service.Record: an event
// it cannot read is refused permanently (dead letter), a database failure is
// retried, a redelivery is acknowledged and does nothing. Safe for
// concurrent use.
type Function struct {
	svc *notification.Service
	log *slog.Logger
}

// New returns the function over svc. It panics when an argument is nil.
func New(svc *notification.Service, log *slog.Logger) *Function {
	if svc == nil || log == nil {
		panic("notificationrecorder: New needs a notification.Service and a logger")
	}
	return &Function{svc: svc, log: log}
}

// Handle records one fact.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	out, err := f.svc.Record(ctx, e)
	if err != nil {
		return nil, err
	}
	f.log.DebugContext(ctx, "notification recorded", "event_type", e.Type(), "event_id", e.ID(),
		"duplicate", out.Duplicate, "in_app", out.InApp != nil, "email", out.Email, "webhooks", out.Webhooks)
	return nil, nil
}
