// Package wiring makes the billing context's shared parts once per process,
// for the builders of the context's functions: the database (with its outbox
// relay) and the Service. Only the billing context can import it.
package wiring

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/fault"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Pool opens the billing context's database (and so starts its outbox relay).
func Pool(ctx context.Context, r *process.Resources) (*pgxpool.Pool, error) {
	return r.Postgres(ctx, billing.Database, outbox.Migrations, inbox.Migrations, billing.Migrations)
}

// Service is the billing context's Service, made once per process. With
// CLOUDPHONE_FAULT set (crash tests only) the process dies right after the
// named step commits.
func Service(ctx context.Context, r *process.Resources) (*billing.Service, error) {
	v, err := r.Once("service:billing", func() (any, error) {
		pool, err := Pool(ctx, r)
		if err != nil {
			return nil, err
		}
		rdb, err := r.Redis(ctx)
		if err != nil {
			return nil, err
		}
		var cfg billing.Config
		if err := config.Load(r.Env, &cfg); err != nil {
			return nil, err
		}
		svc, err := billing.Open(ctx, pool, rdb, cfg, r.Log.With("context", "billing"))
		if err != nil {
			return nil, err
		}
		if hook := fault.ExitAt(r.Env.Env[fault.Env], r.Log); hook != nil {
			svc.AfterStep(hook)
		}
		return svc, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*billing.Service), nil
}
