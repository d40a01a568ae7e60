// Package wiring makes the user context's shared parts once per process, for
// the builders of the context's functions: the database (with its outbox
// relay) and the Service. Only the user context can import it.
package wiring

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Pool opens the user context's database (and so starts its outbox relay).
func Pool(ctx context.Context, r *process.Resources) (*pgxpool.Pool, error) {
	return r.Postgres(ctx, user.Database, outbox.Migrations, inbox.Migrations, user.Migrations)
}

// Service is the user context's Service, made once per process.
func Service(ctx context.Context, r *process.Resources) (*user.Service, error) {
	v, err := r.Once("service:user", func() (any, error) {
		pool, err := Pool(ctx, r)
		if err != nil {
			return nil, err
		}
		rdb, err := r.Redis(ctx)
		if err != nil {
			return nil, err
		}
		var cfg user.Config
		if err := config.Load(r.Env, &cfg); err != nil {
			return nil, err
		}
		revoked, err := r.Revocations(ctx)
		if err != nil {
			return nil, err
		}
		return user.Open(ctx, pool, rdb, cfg, r.Log.With("context", "user"), revoked)
	})
	if err != nil {
		return nil, err
	}
	return v.(*user.Service), nil
}
