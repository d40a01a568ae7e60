// Package deviceoutboxredrive is device-outbox-redrive: on its schedule it
// puts the device context's parked outbox rows (events that kept failing to
// reach the broker) back to pending.
package deviceoutboxredrive

import (
	"context"
	"time"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/internal/wiring"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Name is the function's name in the catalog.
const Name = "device-outbox-redrive"

// Entry declares the function: every five minutes its PingSource sends
// device.EventOutboxRedriveRequested.
var Entry = function.EventEntry(function.Spec{
	Name: Name, Context: device.ContextName,
	Consumes: []string{device.EventOutboxRedriveRequested},
	Schedule: "*/5 * * * *",
	MaxScale: 1, Concurrency: 1, TimeoutSeconds: 60,
	Delivery: &function.Delivery{Retry: 1, BackoffDelay: 10 * time.Second},
}, build)

func build(ctx context.Context, r *process.Resources) (*outbox.RedriveFunction, error) {
	if _, err := wiring.Pool(ctx, r); err != nil {
		return nil, err
	}
	return outbox.NewRedriveFunction(r.Relay(device.Database), r.Log), nil
}
