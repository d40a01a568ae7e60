package billingorders

import (
	"context"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
	"github.com/cloudphone/cloudphone/functions/billing/internal/wiring"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Entry declares the function: its spec and how it is built. Every function
// package has an entry.go of this shape, alike on purpose: the catalog reads
// one declaration per function, beside the code it runs.
var Entry = function.HTTPEntry(function.Spec{
	Name: Name, Context: billing.ContextName,
	Routes: Routes, API: API,
	// Placing an order takes its debit at once (see billing.PlaceOrder) and
	// requests the grant, or fails the order. The debit command is no longer
	// written, but an earlier version's may still be in the outbox at an
	// upgrade: the broker must keep taking it from billing.
	Emits:    []string{userevents.EventQuotaGrantRequested, billingevents.EventOrderFailed, billingevents.EventDebitRequested},
	MaxScale: 10, Concurrency: 100, TimeoutSeconds: 30,
	Secrets: []string{function.SecretUserTokenPublicKey},
}, build)

func build(ctx context.Context, r *process.Resources) (*Function, error) {
	svc, err := wiring.Service(ctx, r)
	if err != nil {
		return nil, err
	}
	return New(svc, svc.Verifier(), r.Log), nil
}
