package function

import (
	"context"
	"time"

	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/process"
)

// OutboxRedriveEntry declares a context's outbox re-drive function, the same
// for every context with an outbox: every five minutes its PingSource sends
// the event type consumes, and the function puts the rows of database's
// outbox that kept failing to reach the broker back to pending. open opens
// the context's database, which starts its outbox relay.
func OutboxRedriveEntry[P any](name, contextName, database, consumes string, open func(context.Context, *process.Resources) (P, error)) Entry {
	return EventEntry(Spec{
		Name: name, Context: contextName,
		Consumes: []string{consumes},
		Schedule: "*/5 * * * *",
		MaxScale: 1, Concurrency: 1, TimeoutSeconds: 60,
		Delivery: &Delivery{Retry: 1, BackoffDelay: 10 * time.Second},
	}, func(ctx context.Context, r *process.Resources) (*outbox.RedriveFunction, error) {
		if _, err := open(ctx, r); err != nil {
			return nil, err
		}
		return outbox.NewRedriveFunction(r.Relay(database), r.Log), nil
	})
}
