package registry

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/billing/billingbalance"
	"github.com/cloudphone/cloudphone/functions/billing/billingjobs"
	"github.com/cloudphone/cloudphone/functions/billing/billingmetering"
	"github.com/cloudphone/cloudphone/functions/billing/billingorders"
	"github.com/cloudphone/cloudphone/functions/billing/billingpaymentwebhook"
	"github.com/cloudphone/cloudphone/functions/billing/billingplans"
	"github.com/cloudphone/cloudphone/functions/billing/billingpurchasesaga"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/fault"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/process"
)

var billingBuilders = map[string]function.Builder{
	billingplans.Name: func(ctx context.Context, r *process.Resources) (any, error) {
		svc, err := billingService(ctx, r)
		if err != nil {
			return nil, err
		}
		return billingplans.New(svc, svc.Verifier(), r.Log), nil
	},
	billingbalance.Name: func(ctx context.Context, r *process.Resources) (any, error) {
		svc, err := billingService(ctx, r)
		if err != nil {
			return nil, err
		}
		return billingbalance.New(svc, svc.Verifier(), r.Log), nil
	},
	billingpaymentwebhook.Name: func(ctx context.Context, r *process.Resources) (any, error) {
		svc, err := billingService(ctx, r)
		if err != nil {
			return nil, err
		}
		return billingpaymentwebhook.New(svc, r.Log), nil
	},
	billingmetering.Name: func(ctx context.Context, r *process.Resources) (any, error) {
		svc, err := billingService(ctx, r)
		if err != nil {
			return nil, err
		}
		return billingmetering.New(svc, r.Log), nil
	},
	billingorders.Name: func(ctx context.Context, r *process.Resources) (any, error) {
		svc, err := billingService(ctx, r)
		if err != nil {
			return nil, err
		}
		return billingorders.New(svc, svc.Verifier(), r.Log), nil
	},
	billingpurchasesaga.Name: func(ctx context.Context, r *process.Resources) (any, error) {
		svc, err := billingService(ctx, r)
		if err != nil {
			return nil, err
		}
		return billingpurchasesaga.New(svc, r.Log), nil
	},
	billingjobs.Name: func(ctx context.Context, r *process.Resources) (any, error) {
		svc, err := billingService(ctx, r)
		if err != nil {
			return nil, err
		}
		return billingjobs.New(svc, r.Relay(billing.Database), r.Log), nil
	},
}

// billingPool opens the billing context's database (and so starts its outbox relay).
func billingPool(ctx context.Context, r *process.Resources) (*pgxpool.Pool, error) {
	return r.Postgres(ctx, billing.Database, outbox.Migrations, inbox.Migrations, billing.Migrations)
}

// billingService is the billing context's Service, made once per process.
// With CLOUDPHONE_FAULT set (crash tests only) the process dies right after
// the named step commits.
func billingService(ctx context.Context, r *process.Resources) (*billing.Service, error) {
	v, err := r.Once("service:billing", func() (any, error) {
		pool, err := billingPool(ctx, r)
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
