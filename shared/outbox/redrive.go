package outbox

import (
	"context"
	"log/slog"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Redriver moves parked outbox rows back to pending (Relay does).
type Redriver interface {
	Redrive(ctx context.Context, ids ...int64) (int, error)
}

// RedriveFunction is the event function that gives a context's parked outbox
// rows (events that kept failing to reach the broker) another round of
// attempts when its scheduled event arrives. Each context with an outbox
// declares its own function around it (user-outbox-redrive, …).
type RedriveFunction struct {
	relay Redriver
	log   *slog.Logger
}

// NewRedriveFunction returns the function for relay.
func NewRedriveFunction(relay Redriver, log *slog.Logger) *RedriveFunction {
	return &RedriveFunction{relay: relay, log: log}
}

// Handle re-drives every parked row. Running it twice is harmless.
func (f *RedriveFunction) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	n, err := f.relay.Redrive(ctx)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		f.log.InfoContext(ctx, "parked outbox events re-driven", "count", n)
	}
	return nil, nil
}
