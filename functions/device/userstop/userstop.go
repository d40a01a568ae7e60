// Package userstop holds the two functions that stop a user's devices on a
// fact from another context: device-balance-stop on billing's
// cloudphone.billing.balance.exhausted (every device that runs or is about
// to, reason insufficient_funds) and device-quota-stop on the user context's
// cloudphone.user.quota.revoked (the newest beyond the running limit left,
// reason quota_reduced, as SPEC §2 asks of an expiry).
package userstop

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/runtime"
)

// Names of the functions in the catalog.
const (
	BalanceName = "device-balance-stop"
	QuotaName   = "device-quota-stop"
)

// The facts each consumes, and the commands both write to the outbox.
var (
	BalanceConsumes = []string{device.EventBalanceExhausted}
	QuotaConsumes   = []string{device.EventQuotaRevoked}
	Emits           = []string{device.EventStopRequested}
)

// Function applies one fact; a duplicate changes nothing, undecodable data is
// refused permanently, a database failure is retried. Safe for concurrent use.
type Function struct {
	svc   *device.Service
	log   *slog.Logger
	apply func(ctx context.Context, svc *device.Service, e event.Event) error
}

// NewBalance returns device-balance-stop over svc.
func NewBalance(svc *device.Service, log *slog.Logger) *Function {
	return newFunction(svc, log, func(ctx context.Context, svc *device.Service, e event.Event) error {
		var b device.BalanceExhausted
		if err := e.DataAs(&b); err != nil {
			return runtime.Permanent(fmt.Errorf("decode %s: %w", e.Type(), err))
		}
		_, err := svc.StopForFunds(ctx, e, b.UserID)
		return err
	})
}

// NewQuota returns device-quota-stop over svc.
func NewQuota(svc *device.Service, log *slog.Logger) *Function {
	return newFunction(svc, log, func(ctx context.Context, svc *device.Service, e event.Event) error {
		var q device.QuotaRevoked
		if err := e.DataAs(&q); err != nil {
			return runtime.Permanent(fmt.Errorf("decode %s: %w", e.Type(), err))
		}
		if q.UserID == "" {
			return nil // a revoke for an unknown user: nothing of theirs runs
		}
		_, err := svc.StopBeyondQuota(ctx, e, q.UserID, q.Limits.MaxRunningDevices)
		return err
	})
}

func newFunction(svc *device.Service, log *slog.Logger, apply func(context.Context, *device.Service, event.Event) error) *Function {
	if svc == nil || log == nil {
		panic("userstop: needs a device.Service and a logger")
	}
	return &Function{svc: svc, log: log, apply: apply}
}

// Handle applies one fact.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	err := f.apply(ctx, f.svc, e)
	if apierr.Is(err, apierr.Invalid) {
		return nil, runtime.Permanent(err)
	}
	return nil, err
}
