// Package billingpurchasesaga is the billing-purchase-saga function: it moves each
// purchase saga on by the debit command and the user context's quota
// replies.
package billingpurchasesaga

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/function"
)

// Name is the function's name in the catalog.
const Name = "billing-purchase-saga"

// Consumes are the event types the function handles.
var Consumes = []string{billingevents.EventDebitRequested, userevents.EventQuotaGranted, userevents.EventQuotaGrantRefused,
	userevents.EventQuotaRevoked}

// Emits are the event types it writes to billing's outbox.
var Emits = []string{userevents.EventQuotaGrantRequested, userevents.EventQuotaRevokeRequested,
	billingevents.EventOrderActivated, billingevents.EventOrderFailed}

// Function applies saga events with billing.Service.HandleDebit and
// HandleQuotaReply: nil acknowledges (also a duplicate or a reply for a step
// already passed), function.NotYet asks the broker to retry a reply that came
// before its step, function.Permanent refuses an event whose data cannot be
// read, any other error is retried. It never replies: the saga's next
// command is in billing's outbox, written with the state change. Safe for
// concurrent use.
type Function struct {
	svc *billing.Service
	log *slog.Logger
}

// New returns the function over svc. It panics when an argument is nil.
func New(svc *billing.Service, log *slog.Logger) *Function {
	if svc == nil || log == nil {
		panic("purchasesaga: New needs a billing.Service and a logger")
	}
	return &Function{svc: svc, log: log}
}

// Handle applies one event.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	var (
		out billing.Outcome
		err error
	)
	switch e.Type() {
	case billingevents.EventDebitRequested:
		var cmd billingevents.DebitRequested
		if err := e.DataAs(&cmd); err != nil {
			return nil, function.Permanent(fmt.Errorf("decode %s: %w", e.Type(), err))
		}
		out, err = f.svc.HandleDebit(ctx, e, cmd)
	case userevents.EventQuotaGranted, userevents.EventQuotaGrantRefused, userevents.EventQuotaRevoked:
		var r userevents.QuotaReply
		if err := e.DataAs(&r); err != nil {
			return nil, function.Permanent(fmt.Errorf("decode %s: %w", e.Type(), err))
		}
		out, err = f.svc.HandleQuotaReply(ctx, e, e.Type(), r)
	default:
		return nil, function.Permanent(fmt.Errorf("%s does not handle %s", Name, e.Type()))
	}
	if err != nil {
		return nil, err
	}
	f.log.DebugContext(ctx, "saga event handled", "event_id", e.ID(), "event_type", e.Type(), "outcome", out)
	return nil, nil
}
