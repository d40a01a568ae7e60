package broker

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/function"
)

// Unit is the broker as a deployable unit of its own, for OpenFaaS, which has
// no broker: the Knative broker's contract (CloudEvents ingress with the
// sender tokens and event policy, delivery with the Triggers' retries,
// backoff and dead-letter sinks, replies stored with the ack) over its own
// Postgres store, plus the schedules (the PingSources' part). It is a
// function.Served, so it is served like a function (health paths, /metrics,
// drain on SIGTERM); run one replica or more on one database. Safe for
// concurrent use.
type Unit struct {
	b     *Broker
	pool  *pgxpool.Pool
	specs []function.Spec
	log   *slog.Logger

	bg function.Background
}

// NewUnit returns the unit around b (made on pool), running the schedules of
// specs.
func NewUnit(b *Broker, pool *pgxpool.Pool, specs []function.Spec, log *slog.Logger) *Unit {
	return &Unit{b: b, pool: pool, specs: specs, log: log}
}

// ServeHTTP is the ingress: a POST to / or /broker/cloudphone.
func (u *Unit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" && r.URL.Path != "/broker/cloudphone" {
		apierr.Write(w, r, u.log, apierr.New(apierr.NotFound, "the broker takes events at / and /broker/cloudphone"))
		return
	}
	u.b.ServeHTTP(w, r)
}

// Start runs the dispatcher and the schedules until Stop.
func (u *Unit) Start(context.Context, map[string]string) error {
	return u.bg.Go(func(ctx context.Context) {
		var wg sync.WaitGroup
		wg.Go(func() { RunSchedules(ctx, u.specs, u.b, u.log.With("component", "schedules")) })
		if err := u.b.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			u.log.Error("broker stopped", "err", err)
		}
		wg.Wait()
	})
}

// Stop stops the dispatcher (deliveries in flight finish) and the schedules.
func (u *Unit) Stop(ctx context.Context) error { return u.bg.Stop(ctx) }

// Ready reports whether the store answers.
func (u *Unit) Ready(ctx context.Context) (bool, error) {
	if err := u.pool.Ping(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// Alive is true while the process runs.
func (u *Unit) Alive(context.Context) (bool, error) { return true, nil }
