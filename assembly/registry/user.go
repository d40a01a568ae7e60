package registry

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/adminipbans"
	"github.com/cloudphone/cloudphone/functions/user/adminusers"
	"github.com/cloudphone/cloudphone/functions/user/authlogin"
	"github.com/cloudphone/cloudphone/functions/user/authlogout"
	"github.com/cloudphone/cloudphone/functions/user/authrefresh"
	"github.com/cloudphone/cloudphone/functions/user/authregister"
	"github.com/cloudphone/cloudphone/functions/user/userprofile"
	"github.com/cloudphone/cloudphone/functions/user/userquotagrants"
	"github.com/cloudphone/cloudphone/functions/user/userquotainternal"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/process"
)

var userBuilders = map[string]function.Builder{
	"auth-register": func(ctx context.Context, r *process.Resources) (any, error) {
		svc, err := userService(ctx, r)
		if err != nil {
			return nil, err
		}
		return authregister.New(svc, r.Log), nil
	},
	"auth-login": func(ctx context.Context, r *process.Resources) (any, error) {
		svc, err := userService(ctx, r)
		if err != nil {
			return nil, err
		}
		return authlogin.New(svc, r.Log), nil
	},
	"auth-refresh": func(ctx context.Context, r *process.Resources) (any, error) {
		svc, err := userService(ctx, r)
		if err != nil {
			return nil, err
		}
		return authrefresh.New(svc, r.Log), nil
	},
	"auth-logout": func(ctx context.Context, r *process.Resources) (any, error) {
		svc, err := userService(ctx, r)
		if err != nil {
			return nil, err
		}
		return authlogout.New(svc, svc.Verifier(), r.Log), nil
	},
	"user-profile": func(ctx context.Context, r *process.Resources) (any, error) {
		svc, err := userService(ctx, r)
		if err != nil {
			return nil, err
		}
		return userprofile.New(svc, svc.Verifier(), r.Log), nil
	},
	"user-quota-internal": func(ctx context.Context, r *process.Resources) (any, error) {
		svc, err := userService(ctx, r)
		if err != nil {
			return nil, err
		}
		var cfg userquotainternal.Config
		if err := config.Load(r.Env, &cfg); err != nil {
			return nil, err
		}
		v, err := cfg.Verifier()
		if err != nil {
			return nil, err
		}
		return userquotainternal.New(svc, v, r.Log), nil
	},
	"user-quota-grants": func(ctx context.Context, r *process.Resources) (any, error) {
		svc, err := userService(ctx, r)
		if err != nil {
			return nil, err
		}
		return userquotagrants.New(svc, r.Log), nil
	},
	"admin-users": func(ctx context.Context, r *process.Resources) (any, error) {
		svc, err := userService(ctx, r)
		if err != nil {
			return nil, err
		}
		return adminusers.New(svc, svc.Verifier(), r.Log), nil
	},
	"admin-ip-bans": func(ctx context.Context, r *process.Resources) (any, error) {
		svc, err := userService(ctx, r)
		if err != nil {
			return nil, err
		}
		ed, err := r.Edge()
		if err != nil {
			return nil, err
		}
		return adminipbans.New(ed.Bans(), svc.Verifier(), r.Log), nil
	},
	"user-outbox-redrive": func(ctx context.Context, r *process.Resources) (any, error) {
		if _, err := userPool(ctx, r); err != nil {
			return nil, err
		}
		return outbox.NewRedriveFunction(r.Relay(user.Database), r.Log), nil
	},
}

// userPool opens the user context's database (and so starts its outbox relay).
func userPool(ctx context.Context, r *process.Resources) (*pgxpool.Pool, error) {
	return r.Postgres(ctx, user.Database, outbox.Migrations, inbox.Migrations, user.Migrations)
}

// userService is the user context's Service, made once per process.
func userService(ctx context.Context, r *process.Resources) (*user.Service, error) {
	v, err := r.Once("service:user", func() (any, error) {
		pool, err := userPool(ctx, r)
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
