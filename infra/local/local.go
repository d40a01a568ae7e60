// Package local runs the whole platform in one process for a developer: every
// function behind one HTTP port, the embedded broker routing by the Trigger
// files in triggers/, a private Postgres and Redis unless URLs are given, and
// an SMTP catcher unless SMTP_URL is.
package local

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/assembly/host"
	"github.com/cloudphone/cloudphone/infra/local/broker"
	"github.com/cloudphone/cloudphone/infra/local/gateway"
	"github.com/cloudphone/cloudphone/infra/local/services"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/edge"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/metrics"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Config is the local platform's configuration, read from the environment.
type Config struct {
	Addr        string `env:"CLOUDPHONE_ADDR" default:"127.0.0.1:8080"`
	DataDir     string `env:"CLOUDPHONE_DATA_DIR" default:".data/local"`
	DatabaseURL string `env:"DATABASE_URL"`
	RedisURL    string `env:"REDIS_URL"`
	// S3Endpoint (with S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_BUCKET and
	// S3_REGION) names an S3-compatible store; unset, a private one is
	// started with its data in DataDir/s3.
	S3Endpoint    string `env:"S3_ENDPOINT"`
	AdminPassword string `env:"CLOUDPHONE_ADMIN_PASSWORD" secret:"admin-password"`
	TriggersDir   string `env:"CLOUDPHONE_TRIGGERS_DIR" default:"triggers"`
}

// Options are what a caller (the command, or a test) adds to Config.
type Options struct {
	Config  Config
	Env     config.Source    // passed to every function (keys and URLs are added)
	Entries []function.Entry // the functions to host
	// Declared are the platform's functions whose declared events the
	// broker admits (function.EventPolicy); nil means Entries. A test that
	// hosts a part of the platform and plays the rest gives them all.
	Declared []function.Spec
	Extra    []broker.Trigger // triggers beyond those in TriggersDir (tests)
	Log      *slog.Logger
	// Bootstrap runs once every function is ready (e.g. create the admin account).
	Bootstrap func(ctx context.Context, res *process.Resources, adminPassword string) error
	// Listening, when set, is called with the base URL once requests are served.
	Listening func(baseURL string)
}

// Platform is a running local platform.
type Platform struct {
	cfg      Config
	log      *slog.Logger
	pg       *services.Postgres
	redis    *services.Redis
	s3       *services.S3
	mail     *services.SMTPCatcher
	res      *process.Resources
	host     *host.Host
	broker   *broker.Broker
	brokerDB interface{ Close() }
	srv      *http.Server
	ln       net.Listener
	// metricsAddr and stopMetrics are the /metrics listener, when
	// CLOUDPHONE_METRICS_ADDR asks for one.
	metricsAddr string
	stopMetrics func(context.Context) error
	bgCancel    context.CancelFunc
	bgDone      chan struct{}
}

// Run starts the platform, serves until ctx is done, then shuts everything
// down in order and returns.
func Run(ctx context.Context, opts Options) error {
	p, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	<-ctx.Done()
	return p.Shutdown(context.Background())
}

// Start brings the platform up and returns once every function is ready and
// the port is served.
func Start(ctx context.Context, opts Options) (_ *Platform, err error) {
	cfg := opts.Config
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	p := &Platform{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.Shutdown(context.Background()))
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	env := maps.Clone(opts.Env.Env)
	if env == nil {
		env = map[string]string{}
	}

	if err := p.startServices(ctx, &cfg, env); err != nil {
		return nil, err
	}
	if err := ensureKeys(filepath.Join(cfg.DataDir, "keys"), env); err != nil {
		return nil, err
	}
	// Listen before the functions start, so the device context can be told
	// where the user, app and billing contexts' internal APIs are: here, on
	// the same port.
	p.ln, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	if env["CLOUDPHONE_USER_URL"] == "" {
		env["CLOUDPHONE_USER_URL"] = p.URL()
	}
	if env["CLOUDPHONE_APP_URL"] == "" {
		env["CLOUDPHONE_APP_URL"] = p.URL()
	}
	if env["CLOUDPHONE_BILLING_URL"] == "" {
		env["CLOUDPHONE_BILLING_URL"] = p.URL()
	}

	m := metrics.New()
	brokerPool, err := db.Open(ctx, cfg.DatabaseURL, env["CLOUDPHONE_DATABASE_PREFIX"]+"cloudphone_broker", broker.Migrations)
	if err != nil {
		return nil, fmt.Errorf("broker database: %w", err)
	}
	p.brokerDB = brokerPool
	triggers, err := broker.LoadTriggers(cfg.TriggersDir)
	if err != nil {
		return nil, err
	}
	triggers = append(triggers, opts.Extra...)
	deliver := &hostDeliverer{}
	src := config.FromMap(env)
	// The resources are made first for the event keys; their sender, the
	// broker, is set once it exists, before anything sends.
	sendTo := &brokerSender{}
	p.res, err = process.New(src, log, m, sendTo)
	if err != nil {
		return nil, err
	}
	specs := opts.Declared
	if specs == nil {
		for _, e := range opts.Entries {
			specs = append(specs, e.Spec)
		}
	}
	p.broker, err = broker.New(brokerPool, triggers, deliver, broker.Options{
		Log: log.With("component", "broker"), Metrics: m,
		Policy: function.EventPolicy(specs), Verifier: p.res.EventVerifier,
		Owner:      brokerOwner(cfg.DataDir, env["CLOUDPHONE_DATABASE_PREFIX"]),
		DirectWait: broker.DefaultDirectWait,
	})
	if err != nil {
		return nil, err
	}
	sendTo.b = p.broker
	p.host, err = host.NewHost(p.res, opts.Entries)
	if err != nil {
		return nil, err
	}
	deliver.host = p.host

	bg, cancel := context.WithCancel(context.Background())
	p.bgCancel, p.bgDone = cancel, make(chan struct{})
	go func() {
		defer close(p.bgDone)
		done := make(chan struct{})
		go func() {
			defer close(done)
			broker.RunSchedules(bg, specs, p.broker, log.With("component", "schedules"))
		}()
		if err := p.broker.Run(bg); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("broker stopped", "err", err)
		}
		<-done
	}()

	started := time.Now()
	if err := p.host.Start(ctx, env); err != nil {
		return nil, err
	}
	if opts.Bootstrap != nil {
		if err := opts.Bootstrap(ctx, p.res, cfg.AdminPassword); err != nil {
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
	}

	mux := http.NewServeMux()
	function.MountHealth(mux, p.host)
	gateway.New(p.host, version(), log).Mount(mux)
	// Events are authenticated by their sender tokens, not by the peer: the
	// broker checks the token and its policy, an event function admits only
	// the broker's token.
	mux.Handle("POST /broker/cloudphone", p.broker)
	mux.Handle("/", p.host)
	var scfg function.ServerConfig
	_ = config.Load(src, &scfg)
	if scfg.MetricsAddress != "" {
		if p.metricsAddr, p.stopMetrics, err = function.ServeMetrics(scfg.MetricsAddress, m, scfg, log); err != nil {
			return nil, err
		}
	}
	p.srv = function.NewServer(p.ln.Addr().String(), edge.SecurityHeaders(scfg.BehindTLS)(mux), scfg, log)
	go func() {
		if err := p.srv.Serve(p.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("server stopped", "err", err)
		}
	}()
	log.Info("platform ready", "url", p.URL(), "functions", len(opts.Entries), "start_ms", time.Since(started).Milliseconds())
	if opts.Listening != nil {
		opts.Listening(p.URL())
	}
	return p, nil
}

// MetricsURL is where /metrics is served (CLOUDPHONE_METRICS_ADDR), empty
// when it is not.
func (p *Platform) MetricsURL() string {
	if p.metricsAddr == "" {
		return ""
	}
	return "http://" + p.metricsAddr + "/metrics"
}

// URL is the base URL requests go to.
func (p *Platform) URL() string { return "http://" + p.ln.Addr().String() }

// Resources are the shared resources of the hosted functions.
func (p *Platform) Resources() *process.Resources { return p.res }

// Broker is the embedded broker.
func (p *Platform) Broker() *broker.Broker { return p.broker }

// DatabaseURL and RedisURL are the servers the platform uses.
func (p *Platform) DatabaseURL() string { return p.cfg.DatabaseURL }

// RedisURL is the Redis the platform uses.
func (p *Platform) RedisURL() string { return p.cfg.RedisURL }

// Shutdown stops accepting, drains, stops the functions, the broker, the pools
// and the private servers, in that order.
func (p *Platform) Shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var errs []error
	if p.srv != nil {
		errs = append(errs, p.srv.Shutdown(ctx))
	} else if p.ln != nil {
		_ = p.ln.Close()
	}
	if p.stopMetrics != nil {
		errs = append(errs, p.stopMetrics(ctx))
	}
	if p.host != nil {
		errs = append(errs, p.host.Stop(ctx))
	}
	if p.bgCancel != nil {
		p.bgCancel()
		<-p.bgDone
	}
	if p.res != nil {
		errs = append(errs, p.res.Close())
	}
	if p.brokerDB != nil {
		p.brokerDB.Close()
	}
	if p.s3 != nil {
		errs = append(errs, p.s3.Stop(ctx))
	}
	if p.mail != nil {
		errs = append(errs, p.mail.Stop(ctx))
	}
	if p.redis != nil {
		errs = append(errs, p.redis.Stop(ctx))
	}
	if p.pg != nil {
		errs = append(errs, p.pg.Stop(ctx))
	}
	return errors.Join(errs...)
}

func (p *Platform) startServices(ctx context.Context, cfg *Config, env map[string]string) error {
	if cfg.DatabaseURL == "" {
		pg, err := services.StartPostgres(ctx, filepath.Join(cfg.DataDir, "postgres"), services.PostgresOptions{Fsync: true, Restart: true}, p.log)
		if err != nil {
			return fmt.Errorf("private postgres: %w", err)
		}
		p.pg = pg
		cfg.DatabaseURL = pg.URL()
	}
	if cfg.RedisURL == "" {
		r, err := services.StartRedis(ctx, filepath.Join(cfg.DataDir, "redis"), services.RedisOptions{Restart: true}, p.log)
		if err != nil {
			return fmt.Errorf("private redis: %w", err)
		}
		p.redis = r
		cfg.RedisURL = r.URL()
	}
	if cfg.S3Endpoint == "" {
		cfg.S3Endpoint = env["S3_ENDPOINT"]
	}
	if cfg.S3Endpoint == "" {
		// The store is this program re-executed: its main calls
		// services.RunS3Gateway.
		s3, err := services.StartS3(ctx, filepath.Join(cfg.DataDir, "s3"), services.S3Options{
			Bucket: env["S3_BUCKET"], Region: env["S3_REGION"],
		}, p.log)
		if err != nil {
			return fmt.Errorf("private s3: %w", err)
		}
		p.s3 = s3
		cfg.S3Endpoint = s3.Config().Endpoint
		for _, kv := range s3.Env() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}
	env["DATABASE_URL"] = cfg.DatabaseURL
	env["REDIS_URL"] = cfg.RedisURL
	if env["SMTP_URL"] == "" {
		// No mail server given: catch every message, for GET /api/v1/admin/mail.
		m, err := services.StartSMTPCatcher(ctx, filepath.Join(cfg.DataDir, "mail"), p.log)
		if err != nil {
			return fmt.Errorf("smtp catcher: %w", err)
		}
		p.mail = m
		env["SMTP_URL"] = m.URL()
		env["CLOUDPHONE_MAIL_DIR"] = m.Dir()
	}
	return nil
}

// version is the platform's build, as the module's VCS revision.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "dev"
}

// brokerSender lets the resources exist before the broker they send to.
type brokerSender struct{ b *broker.Broker }

func (s *brokerSender) Send(ctx context.Context, e event.Event) error {
	if s.b == nil {
		return apierr.New(apierr.Unavailable, "the broker is not running yet")
	}
	return s.b.Send(ctx, e)
}

// SendBatch sends evs to the broker in one statement.
func (s *brokerSender) SendBatch(ctx context.Context, evs []event.Event) []error {
	if s.b == nil {
		errs := make([]error, len(evs))
		for i := range errs {
			errs[i] = apierr.New(apierr.Unavailable, "the broker is not running yet")
		}
		return errs
	}
	return s.b.SendBatch(ctx, evs)
}

// hostDeliverer lets the broker exist before the host it delivers to.
type hostDeliverer struct{ host *host.Host }

func (d *hostDeliverer) Deliver(ctx context.Context, subscriber string, e event.Event) (int, *event.Event, error) {
	return d.host.Deliver(ctx, subscriber, e)
}

// ensureKeys puts the token signing keys in env: given ones win; otherwise
// keys made on first start and kept under dir are used.
func ensureKeys(dir string, env map[string]string) error {
	pairs := []struct{ priv, pub, file string }{
		{"CLOUDPHONE_USER_TOKEN_KEY", "CLOUDPHONE_USER_TOKEN_PUBLIC_KEY", "user-token"},
		{"CLOUDPHONE_SERVICE_TOKEN_KEY", "CLOUDPHONE_SERVICE_TOKEN_PUBLIC_KEY", "service-token"},
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, k := range pairs {
		if env[k.priv] != "" && env[k.pub] != "" {
			continue
		}
		seed, err := readOrMake(filepath.Join(dir, k.file+".seed"))
		if err != nil {
			return err
		}
		pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
		env[k.priv] = base64.StdEncoding.EncodeToString(seed)
		env[k.pub] = base64.StdEncoding.EncodeToString(pub)
	}
	// The payment provider's webhook secret: locally, made once and kept in
	// dir, so a developer can sign test top-ups with it.
	const webhook = "CLOUDPHONE_PAYMENT_WEBHOOK_SECRET"
	if env[webhook] == "" {
		secret, err := readOrMake(filepath.Join(dir, "payment-webhook.secret"))
		if err != nil {
			return err
		}
		env[webhook] = base64.RawURLEncoding.EncodeToString(secret)
	}
	return nil
}

// readOrMake returns the 32 bytes kept at path, making them on first use.
func readOrMake(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		b = make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		return b, os.WriteFile(path, b, 0o600)
	}
	if err != nil {
		return nil, err
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("%s: want 32 bytes", path)
	}
	return b, nil
}

// brokerOwner names this platform's broker the same across its restarts:
// the machine, the data directory and the database prefix. A restarted
// platform resumes at once the deliveries its broker had claimed when it
// died.
func brokerOwner(dataDir, prefix string) string {
	host, _ := os.Hostname()
	if abs, err := filepath.Abs(dataDir); err == nil {
		dataDir = abs
	}
	return host + ":" + dataDir + ":" + prefix
}
