package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/functions/device"
	deviceruntime "github.com/cloudphone/cloudphone/functions/device-runtime"
	"github.com/cloudphone/cloudphone/functions/device/adbapi"
	"github.com/cloudphone/cloudphone/functions/device/adbgateway"
	"github.com/cloudphone/cloudphone/functions/device/adminnodes"
	"github.com/cloudphone/cloudphone/functions/device/devices"
	"github.com/cloudphone/cloudphone/functions/device/reports"
	"github.com/cloudphone/cloudphone/functions/device/userstop"
	"github.com/cloudphone/cloudphone/functions/scheduler/outboxredrive"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/platform"
	"github.com/cloudphone/cloudphone/shared/servicetoken"
)

var deviceBuilders = map[string]platform.Builder{
	devices.Name: func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, v, err := deviceServiceAndVerifier(ctx, r)
		if err != nil {
			return nil, err
		}
		return devices.New(svc, v, r.Log), nil
	},
	adbgateway.Name: func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, v, err := deviceServiceAndVerifier(ctx, r)
		if err != nil {
			return nil, err
		}
		var cfg adbgateway.Config
		if err := config.Load(r.Env, &cfg); err != nil {
			return nil, err
		}
		rdb, err := r.Redis(ctx)
		if err != nil {
			return nil, err
		}
		return adbgateway.New(adbgateway.Options{Devices: svc, Redis: rdb, Verifier: v, Config: cfg,
			Log: r.Log.With("context", "device")})
	},
	adbapi.Name: func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, v, err := deviceServiceAndVerifier(ctx, r)
		if err != nil {
			return nil, err
		}
		var cfg adbapi.Config
		if err := config.Load(r.Env, &cfg); err != nil {
			return nil, err
		}
		return adbapi.New(svc, v, cfg, r.Log), nil
	},
	adminnodes.Name: func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, v, err := deviceServiceAndVerifier(ctx, r)
		if err != nil {
			return nil, err
		}
		return adminnodes.New(svc, v, r.Log), nil
	},
	reports.Name: func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, err := deviceService(ctx, r)
		if err != nil {
			return nil, err
		}
		return reports.New(svc, r.Log), nil
	},
	userstop.BalanceName: func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, err := deviceService(ctx, r)
		if err != nil {
			return nil, err
		}
		return userstop.NewBalance(svc, r.Log), nil
	},
	userstop.QuotaName: func(ctx context.Context, r *platform.Resources) (any, error) {
		svc, err := deviceService(ctx, r)
		if err != nil {
			return nil, err
		}
		return userstop.NewQuota(svc, r.Log), nil
	},
	"device-outbox-redrive": func(ctx context.Context, r *platform.Resources) (any, error) {
		if _, err := devicePool(ctx, r); err != nil {
			return nil, err
		}
		return outboxredrive.New(r.Relay(device.Database), r.Log), nil
	},
}

// devicePool opens the device context's database (and so starts its outbox
// relay). device-runtime keeps its tables in the same database, and a
// process opens a database once, with the migration sets of whichever
// function asks first: so every function on cloudphone_device opens it here,
// with both contexts' sets.
func devicePool(ctx context.Context, r *platform.Resources) (*pgxpool.Pool, error) {
	return r.Postgres(ctx, device.Database, outbox.Migrations, inbox.Migrations, device.Migrations, deviceruntime.Migrations)
}

// deviceService is the device context's Service, made once per process: it
// calls the user context's quota API with service tokens minted for the
// device context.
func deviceService(ctx context.Context, r *platform.Resources) (*device.Service, error) {
	v, err := r.Once("service:device", func() (any, error) {
		var cfg device.Config
		if err := config.Load(r.Env, &cfg); err != nil {
			return nil, err
		}
		if cfg.ServiceTokenKey == "" {
			return nil, errors.New("device: CLOUDPHONE_SERVICE_TOKEN_KEY (secret service-token-key) is not set")
		}
		priv, err := servicetoken.ParsePrivateKey(cfg.ServiceTokenKey)
		if err != nil {
			return nil, fmt.Errorf("device: CLOUDPHONE_SERVICE_TOKEN_KEY: %w", err)
		}
		ports, err := device.ParsePortRange(cfg.PortRange)
		if err != nil {
			return nil, err
		}
		tickets, err := device.NewTickets(cfg.TicketKey, cfg.ServiceTokenKey, cfg.TicketTTL)
		if err != nil {
			return nil, err
		}
		pool, err := devicePool(ctx, r)
		if err != nil {
			return nil, err
		}
		rdb, err := r.Redis(ctx)
		if err != nil {
			return nil, err
		}
		log := r.Log.With("context", "device")
		minter := servicetoken.NewMinter(servicetoken.ContextDevice, priv, servicetoken.MinterOptions{Redis: rdb, Log: log,
			KeyPrefix: cfg.RedisPrefix + servicetoken.DefaultKeyPrefix})
		quota, err := device.NewQuotaClient(cfg.UserURL, servicetoken.Client(minter, servicetoken.ContextUser))
		if err != nil {
			return nil, err
		}
		return device.Open(ctx, pool, device.Options{
			Quota: quota, Tickets: tickets, Ports: ports,
			Node: device.NodeConfig{Name: cfg.NodeName, DockerHost: cfg.DockerHost, ADBHost: cfg.NodeADBHost,
				CPUCores: cfg.NodeCPU, MemoryMB: cfg.NodeMemoryMB},
			Image: cfg.Image, Images: strings.Split(cfg.Images, ","), DefaultStorageGB: cfg.DefaultStorageGB,
			GatewayURL: cfg.GatewayURL, Log: log,
		})
	})
	if err != nil {
		return nil, err
	}
	return v.(*device.Service), nil
}

// deviceServiceAndVerifier is deviceService with the verifier of user access
// tokens (public key CLOUDPHONE_USER_TOKEN_PUBLIC_KEY, revocations in Redis).
func deviceServiceAndVerifier(ctx context.Context, r *platform.Resources) (*device.Service, *auth.Verifier, error) {
	svc, err := deviceService(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	v, err := r.Once("verifier:device", func() (any, error) {
		var cfg device.Config
		if err := config.Load(r.Env, &cfg); err != nil {
			return nil, err
		}
		if cfg.UserTokenPublicKey == "" {
			return nil, errors.New("device: CLOUDPHONE_USER_TOKEN_PUBLIC_KEY (secret user-token-public-key) is not set")
		}
		pub, err := auth.ParsePublicKey(cfg.UserTokenPublicKey)
		if err != nil {
			return nil, fmt.Errorf("device: CLOUDPHONE_USER_TOKEN_PUBLIC_KEY: %w", err)
		}
		rdb, err := r.Redis(ctx)
		if err != nil {
			return nil, err
		}
		return auth.NewVerifier(pub, auth.NewRedisRevocations(rdb)), nil
	})
	if err != nil {
		return nil, nil, err
	}
	return svc, v.(*auth.Verifier), nil
}
