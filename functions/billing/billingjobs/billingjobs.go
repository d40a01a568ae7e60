// Package billingjobs is billing-jobs, the billing context's one scheduled
// function (every minute): it sweeps overdue purchase sagas, and when due
// expires subscriptions (every 5 minutes), charges usage (every 10) and
// re-drives parked outbox rows (every 5).
package billingjobs

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/outbox"
)

// Name is the function's name in the catalog.
const Name = "billing-jobs"

// Schedule is the function's cron schedule.
const Schedule = "* * * * *"

// Consumes are the tick types: the first is the scheduled one; the others
// run one job at once (operators, tests).
var Consumes = []string{billingevents.EventSweepRequested, billingevents.EventExpiryRequested, billingevents.EventChargeRequested}

// Emits are the event types the jobs write to billing's outbox.
var Emits = []string{userevents.EventQuotaRevokeRequested, billingevents.EventOrderFailed, billingevents.EventBalanceExhausted,
	billingevents.EventBalanceLow}

// Function runs billing.Service.RunScheduled for each tick; an error is
// retried by the broker (every job is safe to run again). Safe for concurrent
// use.
type Function struct {
	svc   *billing.Service
	relay *outbox.Relay
	log   *slog.Logger
}

// New returns the function over svc, re-driving relay's parked rows (nil:
// never). It panics when svc or log is nil.
func New(svc *billing.Service, relay *outbox.Relay, log *slog.Logger) *Function {
	if svc == nil || log == nil {
		panic("billingjobs: New needs a billing.Service and a logger")
	}
	return &Function{svc: svc, relay: relay, log: log}
}

// Handle runs the jobs of one tick.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	var tick events.Tick
	if len(e.Data()) > 0 {
		if err := e.DataAs(&tick); err != nil {
			f.log.WarnContext(ctx, "tick without a readable scheduled_at; using now", "err", err)
		}
	}
	var redrive func(context.Context) (int, error)
	if f.relay != nil {
		redrive = func(ctx context.Context) (int, error) { return f.relay.Redrive(ctx) }
	}
	rep, err := f.svc.RunScheduled(ctx, e.Type(), tick.ScheduledAt, redrive)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Type(), err)
	}
	log := f.log.DebugContext
	if rep.Swept > 0 || rep.Expired != nil || rep.Charged != nil || rep.Redriven != nil {
		log = f.log.InfoContext
	}
	log(ctx, "billing jobs ran", "event_type", e.Type(), "swept", rep.Swept, "expired", rep.Expired != nil,
		"charged", rep.Charged != nil, "redriven", rep.Redriven != nil)
	return nil, nil
}
