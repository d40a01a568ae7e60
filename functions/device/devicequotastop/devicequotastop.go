// Package devicequotastop is device-quota-stop: on the user context's
// cloudphone.user.quota.revoked it stops the user's newest devices beyond the
// running limit left, with reason quota_reduced.
package devicequotastop

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/function"
)

// Name is the function's name in the catalog.
const Name = "device-quota-stop"

// The fact it consumes, and the command it writes to the outbox.
var (
	Consumes = []string{userevents.EventQuotaRevoked}
	Emits    = []string{deviceevents.EventStopRequested}
)

// Function applies one quota revocation; a duplicate changes nothing,
// undecodable data is refused permanently, a database failure is retried.
// Safe for concurrent use.
type Function struct {
	svc *device.Service
	log *slog.Logger
}

// New returns device-quota-stop over svc.
func New(svc *device.Service, log *slog.Logger) *Function {
	if svc == nil || log == nil {
		panic("devicequotastop: needs a device.Service and a logger")
	}
	return &Function{svc: svc, log: log}
}

// Handle stops what runs beyond the limit left; a revoke naming no user (an
// unknown grant) is acknowledged, since nothing of theirs runs.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	var q userevents.QuotaRevoked
	if err := e.DataAs(&q); err != nil {
		return nil, function.Permanent(fmt.Errorf("decode %s: %w", e.Type(), err))
	}
	if q.UserID == "" {
		return nil, nil
	}
	_, err := f.svc.StopBeyondQuota(ctx, e, q.UserID, q.Limits.MaxRunningDevices)
	if apierr.Is(err, apierr.Invalid) {
		return nil, function.Permanent(err)
	}
	return nil, err
}
