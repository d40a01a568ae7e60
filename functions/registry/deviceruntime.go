package registry

import (
	"context"

	deviceruntime "github.com/cloudphone/cloudphone/functions/device-runtime"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/platform"
)

var deviceRuntimeBuilders = map[string]platform.Builder{
	deviceruntime.Name: func(ctx context.Context, r *platform.Resources) (any, error) {
		var cfg deviceruntime.Config
		if err := config.Load(r.Env, &cfg); err != nil {
			return nil, err
		}
		pool, err := devicePool(ctx, r) // with deviceruntime.Migrations and the outbox relay
		if err != nil {
			return nil, err
		}
		return deviceruntime.New(pool, cfg, r.Log.With("context", "device"))
	},
}
