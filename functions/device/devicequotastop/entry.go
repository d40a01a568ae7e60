package devicequotastop

import (
	"context"
	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/internal/wiring"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Entry declares the function: its spec and how it is built. Every function
// package has an entry.go of this shape, alike on purpose: the catalog reads
// one declaration per function, beside the code it runs.
var Entry = function.EventEntry(function.Spec{
	Name: Name, Context: device.ContextName,
	Consumes: Consumes,
	Emits:    Emits,
	MaxScale: 3, Concurrency: 20, TimeoutSeconds: 30,
	Secrets: []string{function.SecretServiceTokenKey},
}, build)

func build(ctx context.Context, r *process.Resources) (*Function, error) {
	svc, err := wiring.Service(ctx, r)
	if err != nil {
		return nil, err
	}
	return New(svc, r.Log), nil
}
