// Package billingmetering is the billing-metering function: it records the device
// context's running, stopped, error and deleted facts, from which usage is
// charged.
package billingmetering

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/function"
)

// Name is the function's name in the catalog.
const Name = "billing-metering"

// Consumes are the device facts the function records.
var Consumes = []string{deviceevents.EventRunning, deviceevents.EventStopped, deviceevents.EventError,
	deviceevents.EventDeleted}

// Function records each fact once with billing.Service.RecordDeviceFact; a
// fact that cannot be read is refused permanently, a database failure is
// retried. Safe for concurrent use.
type Function struct {
	svc *billing.Service
	log *slog.Logger
}

// New returns the function over svc. It panics when an argument is nil.
func New(svc *billing.Service, log *slog.Logger) *Function {
	if svc == nil || log == nil {
		panic("metering: New needs a billing.Service and a logger")
	}
	return &Function{svc: svc, log: log}
}

// Handle records one fact.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	var fact deviceevents.Fact
	if err := e.DataAs(&fact); err != nil {
		return nil, function.Permanent(fmt.Errorf("decode %s: %w", e.Type(), err))
	}
	out, err := f.svc.RecordDeviceFact(ctx, e, e.Type(), fact)
	if err != nil {
		return nil, err
	}
	f.log.DebugContext(ctx, "device fact recorded", "device_id", fact.DeviceID, "event_type", e.Type(), "outcome", out)
	return nil, nil
}
