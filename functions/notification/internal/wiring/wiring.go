// Package wiring makes the notification context's shared parts once per
// process, for the builders of the context's functions: the database and the
// Service. Only the notification context can import it.
package wiring

import (
	"context"

	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Service is the notification context's Service, made once per process.
func Service(ctx context.Context, r *process.Resources) (*notification.Service, error) {
	v, err := r.Once("service:notification", func() (any, error) {
		pool, err := r.Postgres(ctx, notification.Database, inbox.Migrations, notification.Migrations)
		if err != nil {
			return nil, err
		}
		rdb, err := r.Redis(ctx)
		if err != nil {
			return nil, err
		}
		var cfg notification.Config
		if err := config.Load(r.Env, &cfg); err != nil {
			return nil, err
		}
		return notification.Open(pool, rdb, cfg, r.Log.With("context", notification.ContextName))
	})
	if err != nil {
		return nil, err
	}
	return v.(*notification.Service), nil
}
