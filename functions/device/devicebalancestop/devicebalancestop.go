// Package devicebalancestop is device-balance-stop: on billing's
// cloudphone.billing.balance.exhausted it stops every device of the user that
// runs or is about to, with reason insufficient_funds.
package devicebalancestop

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/function"
)

// Name is the function's name in the catalog.
const Name = "device-balance-stop"

// The fact it consumes, and the command it writes to the outbox.
var (
	Consumes = []string{billingevents.EventBalanceExhausted}
	Emits    = []string{deviceevents.EventStopRequested}
)

// Function applies one balance exhaustion; a duplicate changes nothing,
// undecodable data is refused permanently, a database failure is retried.
// Safe for concurrent use.
type Function struct {
	svc *device.Service
	log *slog.Logger
}

// New returns device-balance-stop over svc.
func New(svc *device.Service, log *slog.Logger) *Function {
	if svc == nil || log == nil {
		panic("devicebalancestop: needs a device.Service and a logger")
	}
	return &Function{svc: svc, log: log}
}

// Handle stops the user's devices.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	var b billingevents.BalanceExhausted
	if err := e.DataAs(&b); err != nil {
		return nil, function.Permanent(fmt.Errorf("decode %s: %w", e.Type(), err))
	}
	_, err := f.svc.StopForFunds(ctx, e, b.UserID)
	if apierr.Is(err, apierr.Invalid) {
		return nil, function.Permanent(err)
	}
	return nil, err
}
