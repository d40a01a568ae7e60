package adminnodes

import (
	"context"
	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/deviceruntime"
	"github.com/cloudphone/cloudphone/functions/device/internal/wiring"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Entry declares the function: its spec and how it is built. Every function
// package has an entry.go of this shape, alike on purpose: the catalog reads
// one declaration per function, beside the code it runs.
var Entry = function.HTTPEntry(function.Spec{
	Name: Name, Context: device.ContextName,
	Routes: Routes, API: API,
	MaxScale: 3, Concurrency: 50, TimeoutSeconds: 30,
	Secrets: []string{function.SecretUserTokenPublicKey, function.SecretServiceTokenKey},
}, build)

func build(ctx context.Context, r *process.Resources) (*Function, error) {
	svc, v, err := wiring.ServiceAndVerifier(ctx, r)
	if err != nil {
		return nil, err
	}
	var cfg deviceruntime.Config
	if err := config.Load(r.Env, &cfg); err != nil {
		return nil, err
	}
	check := func(ctx context.Context, name, dockerHost string) error {
		return deviceruntime.CheckEngine(ctx, cfg, name, dockerHost)
	}
	return New(svc, v, check, r.Log), nil
}
