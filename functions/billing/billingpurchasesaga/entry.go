package billingpurchasesaga

import (
	"context"
	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/internal/wiring"
	"time"

	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Entry declares the function: its spec and how it is built. Every function
// package has an entry.go of this shape, alike on purpose: the catalog reads
// one declaration per function, beside the code it runs.
var Entry = function.EventEntry(function.Spec{
	Name: Name, Context: billing.ContextName,
	Consumes: Consumes,
	Emits:    Emits,
	MaxScale: 10, Concurrency: 50, TimeoutSeconds: 30,
	Secrets: []string{function.SecretUserTokenPublicKey},
	// A saga step is retried 3 times, after 1 s, 2 s and 4 s (the broker
	// waits BackoffDelay × 2^n before retry n ≥ 1).
	Delivery: &function.Delivery{Retry: 3, BackoffDelay: 500 * time.Millisecond},
}, build)

func build(ctx context.Context, r *process.Resources) (*Function, error) {
	svc, err := wiring.Service(ctx, r)
	if err != nil {
		return nil, err
	}
	return New(svc, r.Log), nil
}
