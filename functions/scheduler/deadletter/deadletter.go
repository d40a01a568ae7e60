// Package deadletter is the dead-letter sink every Trigger names: it keeps
// each event the broker gave up on, with the broker's error, for an operator.
package deadletter

import (
	"context"
	"log/slog"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/functions/scheduler"
)

// Function stores dead letters.
type Function struct {
	store *scheduler.DeadLetters
	log   *slog.Logger
}

// New returns the sink writing to store.
func New(store *scheduler.DeadLetters, log *slog.Logger) *Function {
	return &Function{store: store, log: log}
}

// Handle records e; a failure to record is retried by the broker.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	if err := f.store.Record(ctx, e); err != nil {
		return nil, err
	}
	f.log.WarnContext(ctx, "dead letter recorded", "event_id", e.ID(), "event_type", e.Type(),
		"destination", e.Extensions()["knativeerrordest"], "error_code", e.Extensions()["knativeerrorcode"])
	return nil, nil
}
