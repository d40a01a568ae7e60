// Package useroutboxredrive is user-outbox-redrive: on its schedule it puts
// the user context's parked outbox rows (events that kept failing to reach
// the broker) back to pending.
package useroutboxredrive

import (
	"context"
	"time"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/internal/wiring"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Name is the function's name in the catalog.
const Name = "user-outbox-redrive"

// Entry declares the function: every five minutes its PingSource sends
// user.EventOutboxRedriveRequested.
var Entry = function.EventEntry(function.Spec{
	Name: Name, Context: user.ContextName,
	Consumes: []string{user.EventOutboxRedriveRequested},
	Schedule: "*/5 * * * *",
	MaxScale: 1, Concurrency: 1, TimeoutSeconds: 60,
	Delivery: &function.Delivery{Retry: 1, BackoffDelay: 10 * time.Second},
}, build)

func build(ctx context.Context, r *process.Resources) (*outbox.RedriveFunction, error) {
	if _, err := wiring.Pool(ctx, r); err != nil {
		return nil, err
	}
	return outbox.NewRedriveFunction(r.Relay(user.Database), r.Log), nil
}
