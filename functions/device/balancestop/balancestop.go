// Package balancestop is the device-balance-stop function: on billing's
// cloudphone.billing.balance.exhausted it stops every device of the user that
// runs or is about to (reason insufficient_funds).
package balancestop

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/runtime"
)

// Name is the function's name in the catalog.
const Name = "device-balance-stop"

// Consumes is the fact the function handles.
var Consumes = []string{device.EventBalanceExhausted}

// Emits are the commands it writes to the outbox.
var Emits = []string{device.EventStopRequested}

// Function applies one balance.exhausted fact with
// device.Service.StopForFunds; a duplicate changes nothing, undecodable data
// is refused permanently, a database failure is retried. Safe for concurrent
// use.
type Function struct {
	svc *device.Service
	log *slog.Logger
}

// New returns the function over svc. It panics when an argument is nil.
func New(svc *device.Service, log *slog.Logger) *Function {
	if svc == nil || log == nil {
		panic("balancestop: New needs a device.Service and a logger")
	}
	return &Function{svc: svc, log: log}
}

// Handle applies one fact.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	var b device.BalanceExhausted
	if err := e.DataAs(&b); err != nil {
		return nil, runtime.Permanent(fmt.Errorf("decode %s: %w", e.Type(), err))
	}
	_, err := f.svc.StopForFunds(ctx, e, b.UserID)
	if apierr.Is(err, apierr.Invalid) {
		return nil, runtime.Permanent(err)
	}
	return nil, err
}
