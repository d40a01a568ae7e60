// Package wiring makes the device context's shared parts once per process,
// for the builders of the context's functions: the database (with its outbox
// relay and device-runtime's tables), the Service and the verifier of access
// tokens. Only the device context can import it.
package wiring

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/functions/device"
	runtimemigrations "github.com/cloudphone/cloudphone/functions/device/deviceruntime/migrations"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/process"
	"github.com/cloudphone/cloudphone/shared/servicetoken"
)

// Pool opens the device context's database (and so starts its outbox
// relay). device-runtime keeps its tables in the same database, and a
// process opens a database once, with the migration sets of whichever
// function asks first: so every function on cloudphone_device opens it here,
// with both sets.
func Pool(ctx context.Context, r *process.Resources) (*pgxpool.Pool, error) {
	return r.Postgres(ctx, device.Database, outbox.Migrations, inbox.Migrations, device.Migrations, runtimemigrations.Set)
}

// Service is the device context's Service, made once per process: it
// calls the user context's quota API with service tokens minted for the
// device context.
func Service(ctx context.Context, r *process.Resources) (*device.Service, error) {
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
		pool, err := Pool(ctx, r)
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
		apps, err := device.NewAppsClient(cfg.AppURL, servicetoken.Client(minter, servicetoken.ContextApp))
		funds, err := device.NewFundsClient(cfg.BillingURL, servicetoken.Client(minter, servicetoken.ContextBilling))
		if err != nil {
			return nil, err
		}
		svc, err := device.Open(ctx, pool, device.Options{
			Quota: quota, Apps: apps, Funds: funds, Tickets: tickets, Ports: ports,
			Node: device.NodeConfig{Name: cfg.NodeName, DockerHost: cfg.DockerHost, ADBHost: cfg.NodeADBHost,
				CPUCores: cfg.NodeCPU, MemoryMB: cfg.NodeMemoryMB},
			Image: cfg.Image, Images: strings.Split(cfg.Images, ","), DefaultStorageGB: cfg.DefaultStorageGB, Placement: cfg.Placement,
			GatewayURL: cfg.GatewayURL, Log: log,
		})
		if err != nil {
			return nil, err
		}
		return svc, svc.ReportTo(r.Metrics)
	})
	if err != nil {
		return nil, err
	}
	return v.(*device.Service), nil
}

// ServiceAndVerifier is Service with the verifier of user access
// tokens (public key CLOUDPHONE_USER_TOKEN_PUBLIC_KEY, revocations in Redis).
func ServiceAndVerifier(ctx context.Context, r *process.Resources) (*device.Service, *auth.Verifier, error) {
	svc, err := Service(ctx, r)
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
