package deviceadbgateway

import (
	"context"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/internal/wiring"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Entry declares the function: its spec and how it is built. It is
// long-running: a session lasts as long as its user keeps it, and the
// gateway watches the devices of its sessions.
var Entry = function.HTTPEntry(function.Spec{
	Name: Name, Context: device.ContextName,
	Routes: Routes, API: API,
	Emits:    Emits,
	MinScale: 1, MaxScale: 10, Concurrency: 1000, TimeoutSeconds: 600,
	Secrets: []string{function.SecretUserTokenPublicKey, function.SecretServiceTokenKey},
}, build)

func build(ctx context.Context, r *process.Resources) (*Function, error) {
	svc, v, err := wiring.ServiceAndVerifier(ctx, r)
	if err != nil {
		return nil, err
	}
	var cfg Config
	if err := config.Load(r.Env, &cfg); err != nil {
		return nil, err
	}
	rdb, err := r.Redis(ctx)
	if err != nil {
		return nil, err
	}
	return New(Options{Devices: svc, Redis: rdb, Verifier: v, Config: cfg, Log: r.Log.With("context", "device")})
}
