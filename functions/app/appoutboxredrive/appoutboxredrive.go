// Package appoutboxredrive is app-outbox-redrive: on its schedule it puts the
// app context's parked outbox rows (events that kept failing to reach the
// broker) back to pending.
package appoutboxredrive

import (
	"context"
	"time"

	"github.com/cloudphone/cloudphone/functions/app"
	"github.com/cloudphone/cloudphone/functions/app/internal/wiring"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Name is the function's name in the catalog.
const Name = "app-outbox-redrive"

// Entry declares the function: every five minutes its PingSource sends
// app.EventOutboxRedriveRequested.
var Entry = function.EventEntry(function.Spec{
	Name: Name, Context: app.ContextName,
	Consumes: []string{app.EventOutboxRedriveRequested},
	Schedule: "*/5 * * * *",
	MaxScale: 1, Concurrency: 1, TimeoutSeconds: 60,
	Delivery: &function.Delivery{Retry: 1, BackoffDelay: 10 * time.Second},
}, build)

func build(ctx context.Context, r *process.Resources) (*outbox.RedriveFunction, error) {
	if _, err := wiring.Pool(ctx, r); err != nil {
		return nil, err
	}
	return outbox.NewRedriveFunction(r.Relay(app.Database), r.Log), nil
}
