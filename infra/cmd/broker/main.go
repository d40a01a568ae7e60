// Command broker is the event broker as a deployable unit, for OpenFaaS: it
// takes CloudEvents with a sender token at / (BROKER_URL of every bundle),
// checks them against the event policy of the catalog, stores them in its own
// Postgres database (cloudphone_broker) and delivers them by the rendered
// Triggers to http://gateway.openfaas:8080/function/<bundle>/function/<name>
// (BROKER_GATEWAY_URL), with its own sender token, retries, backoff and
// dead-letter sinks; it also sends the scheduled functions their ticks.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/infra/local/broker"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/eventauth"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/metrics"
	"github.com/cloudphone/cloudphone/shared/servicetoken"
	"github.com/cloudphone/cloudphone/shared/tracing"
	"github.com/cloudphone/cloudphone/triggers"
)

// Config is the broker unit's configuration.
type Config struct {
	DatabaseURL    string `env:"DATABASE_URL" secret:"database-url" default:"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"`
	DatabasePrefix string `env:"CLOUDPHONE_DATABASE_PREFIX"`
	// GatewayURL is where the bundles are reached.
	GatewayURL string `env:"BROKER_GATEWAY_URL" default:"http://gateway.openfaas:8080"`
	// TriggersDir, when set, replaces the Trigger files built in.
	TriggersDir string `env:"CLOUDPHONE_TRIGGERS_DIR"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "broker:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	src := config.FromEnvironment()
	log := function.Logger(src).With("component", "broker")
	var cfg Config
	var keys servicetoken.Config
	if err := config.Load(src, &cfg); err != nil {
		return err
	}
	if err := config.Load(src, &keys); err != nil {
		return err
	}
	stopTracing, err := tracing.Setup(ctx, src, "cloudphone-broker")
	if err != nil {
		return err
	}
	defer func() { _ = stopTracing(context.Background()) }()
	priv, err := servicetoken.ParsePrivateKey(keys.PrivateKey)
	if err != nil {
		return fmt.Errorf("CLOUDPHONE_SERVICE_TOKEN_KEY: %w", err)
	}
	pub, err := servicetoken.ParsePublicKey(keys.PublicKey)
	if err != nil {
		return fmt.Errorf("CLOUDPHONE_SERVICE_TOKEN_PUBLIC_KEY: %w", err)
	}
	signer, err := eventauth.NewSigner(priv)
	if err != nil {
		return err
	}
	verifier, err := eventauth.NewVerifier(pub)
	if err != nil {
		return err
	}
	var trs []broker.Trigger
	if cfg.TriggersDir != "" {
		trs, err = broker.LoadTriggers(cfg.TriggersDir)
	} else {
		trs, err = broker.LoadTriggersFS(triggers.Files)
	}
	if err != nil {
		return err
	}
	openCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	pool, err := db.Open(openCtx, cfg.DatabaseURL, cfg.DatabasePrefix+"cloudphone_broker", broker.Migrations)
	if err != nil {
		return fmt.Errorf("broker database: %w", err)
	}
	defer pool.Close()
	specs := catalog.All()
	gateway := strings.TrimSuffix(cfg.GatewayURL, "/")
	deliver := &broker.HTTPDeliverer{Signer: signer, URL: func(subscriber string) string {
		return SubscriberURL(gateway, subscriber)
	}}
	m := metrics.New()
	b, err := broker.New(pool, trs, deliver, broker.Options{
		Log: log, Metrics: m, Policy: function.EventPolicy(specs), Verifier: verifier,
		DirectWait: broker.DefaultDirectWait,
	})
	if err != nil {
		return err
	}
	return function.ServeContext(ctx, broker.NewUnit(b, pool, specs, log), src, nil, log, m)
}

// SubscriberURL is where the function named subscriber is reached through
// the gateway: its bundle, then the function by name within it.
func SubscriberURL(gateway, subscriber string) string {
	bundle := subscriber
	if s, ok := catalog.ByName(subscriber); ok {
		bundle = catalog.BundleOf(s)
	}
	return gateway + "/function/" + bundle + "/function/" + subscriber
}
