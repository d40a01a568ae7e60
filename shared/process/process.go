// Package process holds what one process gives every function it hosts:
// configuration, logger, metrics, and Postgres pools, Redis and the event
// sender opened lazily and once. On Knative a process hosts one function; on
// OpenFaaS one context's bundle; locally, all of them.
package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/edge"
	"github.com/cloudphone/cloudphone/shared/eventauth"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/metrics"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/servicetoken"
	"github.com/cloudphone/cloudphone/shared/tracing"
)

// Base is the configuration every process reads.
type Base struct {
	DatabaseURL string `env:"DATABASE_URL" secret:"database-url" default:"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"`
	RedisURL    string `env:"REDIS_URL" secret:"redis-url" default:"redis://127.0.0.1:6379/0"`
	// BrokerURL is where events are sent; Knative's SinkBinding sets K_SINK.
	BrokerURL string `env:"BROKER_URL"`
	KSink     string `env:"K_SINK"`
	// EventAuth is how an event function checks who sent an event: "token"
	// (the platform's sender tokens: locally and on OpenFaaS, where the
	// platform's broker delivers) or "eventing" (on Knative, where Eventing's
	// Broker delivers with its own OIDC identity and enforces the rendered
	// EventPolicies at its ingress, and the event functions are
	// cluster-local).
	EventAuth string `env:"CLOUDPHONE_EVENT_AUTH" default:"token"`
	// EventTokenFile is, with EventAuth "eventing", the projected
	// service-account token (audience: the Broker) that events are sent
	// with, so that Eventing's Broker knows their context.
	EventTokenFile string `env:"CLOUDPHONE_EVENT_TOKEN_FILE"`
	// DatabasePrefix is put before every context's database name, so that
	// several platforms (tests, say) can share one Postgres server.
	DatabasePrefix string `env:"CLOUDPHONE_DATABASE_PREFIX"`
}

// Resources is the process-wide set of shared resources. Safe for concurrent
// use; every accessor opens its resource at most once.
type Resources struct {
	Env     config.Source
	Base    Base
	Log     *slog.Logger
	Metrics *metrics.Metrics
	Sender  events.Sender
	// EventSigner signs the sender tokens of events this process sends, and
	// EventVerifier checks those of events it receives; each is nil when the
	// service-token key it needs is not configured (events are then refused).
	EventSigner   *eventauth.Signer
	EventVerifier *eventauth.Verifier

	mu      sync.Mutex
	once    map[string]*onceValue
	pools   []*pgxpool.Pool
	relays  map[string]*outbox.Relay
	rdb     *redis.Client
	bg      context.Context
	stopBg  context.CancelFunc
	bgDone  sync.WaitGroup
	closing bool
	// stopTracing flushes the spans not exported yet and stops tracing.
	stopTracing func(context.Context) error
}

type onceValue struct {
	once sync.Once
	v    any
	err  error
}

// New reads Base from env. A nil sender means "POST to K_SINK or BROKER_URL"
// with a sender token signed by the service-token key.
func New(env config.Source, log *slog.Logger, m *metrics.Metrics, sender events.Sender) (*Resources, error) {
	var base Base
	if err := config.Load(env, &base); err != nil {
		return nil, err
	}
	signer, verifier, err := eventKeys(env)
	if err != nil {
		return nil, err
	}
	if sender == nil {
		url := base.KSink
		if url == "" {
			url = base.BrokerURL
		}
		if url == "" {
			sender = events.SenderFunc(func(context.Context, event.Event) error {
				return errors.New("no broker configured: set K_SINK or BROKER_URL")
			})
		} else {
			pub := events.NewHTTPPublisher(url)
			if base.EventAuth == "eventing" {
				// Eventing's Broker knows senders by their OIDC
				// identity, not by the platform's tokens.
				pub.Authorize = (&eventauth.TokenFile{Path: base.EventTokenFile}).Authorize
			} else if signer != nil {
				pub.Authorize = func(r *http.Request) error {
					sender := eventauth.SenderFrom(r.Context())
					if sender == "" {
						return errors.New("event sent with no sender identity")
					}
					return signer.Authorize(r, sender, eventauth.BrokerAudience)
				}
			}
			sender = pub
		}
	}
	if m == nil {
		m = metrics.New()
	}
	stopTracing, err := tracing.Setup(context.Background(), env, tracing.DefaultServiceName)
	if err != nil {
		return nil, err
	}
	bg, stop := context.WithCancel(context.Background())
	return &Resources{Env: env, Base: base, Log: log, Metrics: m, Sender: sender, EventSigner: signer, EventVerifier: verifier,
		once: map[string]*onceValue{}, relays: map[string]*outbox.Relay{}, bg: bg, stopBg: stop, stopTracing: stopTracing}, nil
}

// eventKeys makes the event token signer and verifier from the service-token
// key pair, each nil when its key is not set.
func eventKeys(env config.Source) (*eventauth.Signer, *eventauth.Verifier, error) {
	var keys servicetoken.Config
	if err := config.Load(env, &keys); err != nil {
		return nil, nil, err
	}
	var (
		signer   *eventauth.Signer
		verifier *eventauth.Verifier
	)
	if keys.PrivateKey != "" {
		priv, err := servicetoken.ParsePrivateKey(keys.PrivateKey)
		if err != nil {
			return nil, nil, err
		}
		if signer, err = eventauth.NewSigner(priv); err != nil {
			return nil, nil, err
		}
	}
	if keys.PublicKey != "" {
		pub, err := servicetoken.ParsePublicKey(keys.PublicKey)
		if err != nil {
			return nil, nil, err
		}
		if verifier, err = eventauth.NewVerifier(pub); err != nil {
			return nil, nil, err
		}
	}
	return signer, verifier, nil
}

// Once returns the value open produced for key, calling open only the first
// time (concurrent callers wait for it). An error is remembered too.
func (r *Resources) Once(key string, open func() (any, error)) (any, error) {
	r.mu.Lock()
	ov, ok := r.once[key]
	if !ok {
		ov = &onceValue{}
		r.once[key] = ov
	}
	r.mu.Unlock()
	ov.once.Do(func() { ov.v, ov.err = open() })
	return ov.v, ov.err
}

// Postgres returns the pool for database (after DatabasePrefix), creating the database and applying
// sets on first use. When sets include the outbox, a relay publishing that
// database's outbox to Sender runs until Close.
func (r *Resources) Postgres(ctx context.Context, database string, sets ...db.Migrations) (*pgxpool.Pool, error) {
	database = r.Base.DatabasePrefix + database
	v, err := r.Once("postgres:"+database, func() (any, error) {
		pool, err := db.Open(ctx, r.Base.DatabaseURL, database, sets...)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", database, err)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.closing {
			pool.Close()
			return nil, errors.New("resources are closing")
		}
		r.pools = append(r.pools, pool)
		if slices.ContainsFunc(sets, func(s db.Migrations) bool { return s.Set == outbox.Migrations.Set }) {
			// The relay sends as the context owning the database: whichever
			// of its functions wrote the row, the context's policy holds.
			sendAs := eventauth.ContextOfDatabase(database[len(r.Base.DatabasePrefix):])
			var send events.Sender = events.SenderFunc(func(ctx context.Context, e event.Event) error {
				return r.Sender.Send(eventauth.WithSender(ctx, sendAs), e)
			})
			if bs, ok := r.Sender.(events.BatchSender); ok {
				send = batchSenderAs{bs, sendAs}
			}
			relay := outbox.NewRelay(pool, send, outbox.Options{Log: r.Log.With("outbox", database), Metrics: r.Metrics, Context: database})
			r.relays[database] = relay
			r.bgDone.Add(1)
			go func() {
				defer r.bgDone.Done()
				if err := relay.Run(r.bg); err != nil && !errors.Is(err, context.Canceled) {
					r.Log.Error("outbox relay stopped", "database", database, "err", err)
				}
			}()
		}
		return pool, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*pgxpool.Pool), nil
}

// Relay returns the outbox relay of database (before DatabasePrefix), or nil
// when this process has not opened that database with the outbox.
func (r *Resources) Relay(database string) *outbox.Relay {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.relays[r.Base.DatabasePrefix+database]
}

// redisWarmTimeout bounds the dial of the Redis client's first connection.
const redisWarmTimeout = 5 * time.Second

// Redis returns the process's Redis client, created on first use.
func (r *Resources) Redis(ctx context.Context) (*redis.Client, error) {
	v, err := r.Once("redis", func() (any, error) {
		opt, err := redis.ParseURL(r.Base.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		rdb := redis.NewClient(opt)
		r.mu.Lock()
		r.rdb = rdb
		r.mu.Unlock()
		// Dial the first connection now, while the caller goes on (opening
		// its database, say), rather than on the first command: the
		// readiness probe then finds it open.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), redisWarmTimeout)
			defer cancel()
			_ = rdb.Ping(ctx).Err()
		}()
		return rdb, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*redis.Client), nil
}

// Revocations returns the process's record of revoked access tokens: it
// remembers answers and learns of revocations elsewhere over Redis pub/sub,
// and a logout made in this process is refused here at once.
func (r *Resources) Revocations(ctx context.Context) (*auth.Watched, error) {
	v, err := r.Once("revocations", func() (any, error) {
		rdb, err := r.Redis(ctx)
		if err != nil {
			return nil, err
		}
		return auth.WatchRevocations(rdb, r.Log.With("component", "revocations")), nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*auth.Watched), nil
}

// Edge returns the protection of public functions (rate limits, deny list,
// security headers …), made once per process on the process's Redis.
func (r *Resources) Edge() (*edge.Edge, error) {
	v, err := r.Once("edge", func() (any, error) {
		rdb, err := r.Redis(context.Background())
		if err != nil {
			return nil, err
		}
		revoked, err := r.Revocations(context.Background())
		if err != nil {
			return nil, err
		}
		return edge.New(r.Env, rdb, revoked, r.Log.With("component", "edge"), r.Metrics)
	})
	if err != nil {
		return nil, err
	}
	return v.(*edge.Edge), nil
}

// Ping checks every pool and Redis client opened so far.
func (r *Resources) Ping(ctx context.Context) error {
	r.mu.Lock()
	pools := slices.Clone(r.pools)
	rdb := r.rdb
	r.mu.Unlock()
	// All at once: a probe waits for the slowest, not for the sum.
	errs := make([]error, len(pools)+1)
	var wg sync.WaitGroup
	for i, p := range pools {
		wg.Go(func() { errs[i] = p.Ping(ctx) })
	}
	if rdb != nil {
		wg.Go(func() { errs[len(pools)] = rdb.Ping(ctx).Err() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close stops the relays and closes every pool and client.
func (r *Resources) Close() error {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	r.stopBg()
	r.bgDone.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.stopTracing(ctx); err != nil {
		r.Log.Warn("spans not exported", "err", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pools {
		p.Close()
	}
	r.pools = nil
	if r.rdb != nil {
		return r.rdb.Close()
	}
	return nil
}

// batchSenderAs sends through a BatchSender as the context as.
type batchSenderAs struct {
	s  events.BatchSender
	as string
}

func (b batchSenderAs) Send(ctx context.Context, e event.Event) error {
	return b.s.Send(eventauth.WithSender(ctx, b.as), e)
}

func (b batchSenderAs) SendBatch(ctx context.Context, evs []event.Event) []error {
	return b.s.SendBatch(eventauth.WithSender(ctx, b.as), evs)
}
