package deadletter

import (
	"context"

	"github.com/cloudphone/cloudphone/functions/scheduler"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Name is the function every Broker and Trigger names as its dead-letter
// sink. It receives every event whose delivery failed permanently or ran out
// of retries, whatever its type, directly from the broker: it has no
// Consumes and no Trigger.
const Name = "dead-letter"

// Entry declares the function: its spec and how it is built. Every function
// package has an entry.go of this shape, alike on purpose: the catalog reads
// one declaration per function, beside the code it runs.
var Entry = function.EventEntry(function.Spec{
	Name: Name, Context: scheduler.ContextName,
	MaxScale: 3, Concurrency: 50, TimeoutSeconds: 30,
}, build)

func build(ctx context.Context, r *process.Resources) (*Function, error) {
	pool, err := r.Postgres(ctx, scheduler.Database, scheduler.MigrationSets()...)
	if err != nil {
		return nil, err
	}
	return New(scheduler.NewDeadLetters(pool), r.Log), nil
}
