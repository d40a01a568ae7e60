package registry

import (
	"context"

	"github.com/cloudphone/cloudphone/functions/device/deviceruntime"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/process"
)

var deviceRuntimeBuilders = map[string]function.Builder{
	deviceruntime.Name: func(ctx context.Context, r *process.Resources) (any, error) {
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
