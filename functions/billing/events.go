package billing

import (
	"context"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/shared/events"
)

// Sources of billing's events.
const (
	SourceOrders = "/cloudphone/billing/billing-orders"
	SourceSaga   = "/cloudphone/billing/billing-purchase-saga"
	SourceJobs   = "/cloudphone/billing/billing-jobs"
)

// newEvent builds an event whose correlationid is correlation (a saga's order
// id, say), whatever the event being handled carries; causationid still
// points at the event being handled.
func newEvent(ctx context.Context, typ, source, subject, correlation string, data any) (event.Event, error) {
	e, err := events.New(ctx, typ, source, subject, data)
	if err != nil {
		return e, err
	}
	if correlation != "" {
		e.SetExtension(events.ExtCorrelation, correlation)
	}
	return e, nil
}
