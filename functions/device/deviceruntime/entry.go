package deviceruntime

import (
	"context"
	devicecontext "github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/internal/wiring"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Entry declares the function: its spec and how it is built. Every function
// package has an entry.go of this shape, alike on purpose: the catalog reads
// one declaration per function, beside the code it runs.
var Entry = function.EventEntry(function.Spec{
	Name: Name, Context: devicecontext.ContextName,
	Consumes: Consumes,
	Emits:    Emits,
	// One instance, never scaled to zero: it keeps its own queue, a Docker
	// events watch and a reconcile loop.
	MinScale: 1, MaxScale: 1, Concurrency: 100, TimeoutSeconds: 30,
}, build)

func build(ctx context.Context, r *process.Resources) (*Function, error) {
	var cfg Config
	if err := config.Load(r.Env, &cfg); err != nil {
		return nil, err
	}
	pool, err := wiring.Pool(ctx, r) // with Migrations and the outbox relay
	if err != nil {
		return nil, err
	}
	return New(pool, cfg, r.Log.With("context", "device"), WithMetrics(r.Metrics))
}
