// Package outboxredrive gives a context's parked outbox rows (events that
// kept failing to reach the broker) another round of attempts, on a schedule.
package outboxredrive

import (
	"context"
	"log/slog"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Redriver moves parked outbox rows back to pending (shared/outbox.Relay).
type Redriver interface {
	Redrive(ctx context.Context, ids ...int64) (int, error)
}

// Function re-drives one context's outbox when its scheduled event arrives.
type Function struct {
	relay Redriver
	log   *slog.Logger
}

// New returns the function for relay.
func New(relay Redriver, log *slog.Logger) *Function { return &Function{relay: relay, log: log} }

// Handle re-drives every parked row. Running it twice is harmless.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	n, err := f.relay.Redrive(ctx)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		f.log.InfoContext(ctx, "parked outbox events re-driven", "count", n)
	}
	return nil, nil
}
