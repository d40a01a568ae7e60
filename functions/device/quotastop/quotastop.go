// Package quotastop is the device-quota-stop function: on the user context's
// cloudphone.user.quota.revoked (a plan expired, or a purchase was undone) it
// stops the user's newest devices beyond the running-devices limit left
// (reason quota_reduced), as SPEC §2 asks of an expiry.
package quotastop

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
const Name = "device-quota-stop"

// Consumes is the fact the function handles.
var Consumes = []string{device.EventQuotaRevoked}

// Emits are the commands it writes to the outbox.
var Emits = []string{device.EventStopRequested}

// Function applies one quota.revoked fact with
// device.Service.StopBeyondQuota; a duplicate changes nothing, undecodable
// data is refused permanently, a database failure is retried. Safe for
// concurrent use.
type Function struct {
	svc *device.Service
	log *slog.Logger
}

// New returns the function over svc. It panics when an argument is nil.
func New(svc *device.Service, log *slog.Logger) *Function {
	if svc == nil || log == nil {
		panic("quotastop: New needs a device.Service and a logger")
	}
	return &Function{svc: svc, log: log}
}

// Handle applies one fact.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	var q device.QuotaRevoked
	if err := e.DataAs(&q); err != nil {
		return nil, runtime.Permanent(fmt.Errorf("decode %s: %w", e.Type(), err))
	}
	if q.UserID == "" {
		return nil, nil // a revoke for an unknown user: nothing of theirs runs
	}
	_, err := f.svc.StopBeyondQuota(ctx, e, q.UserID, q.Limits.MaxRunningDevices)
	if apierr.Is(err, apierr.Invalid) {
		return nil, runtime.Permanent(err)
	}
	return nil, err
}
