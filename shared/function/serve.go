package function

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/edge"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/metrics"
)

// ServerConfig is read once from the environment. The timeout names follow
// OpenFaaS' watchdog so its settings apply unchanged.
type ServerConfig struct {
	ListenAddress string        `env:"LISTEN_ADDRESS" default:":8080"`
	ReadTimeout   time.Duration `env:"read_timeout" default:"30s"`
	WriteTimeout  time.Duration `env:"write_timeout" default:"60s"`
	DrainTimeout  time.Duration `env:"DRAIN_TIMEOUT" default:"25s"`
	// MetricsAddress is where /metrics is served, on a listener of its own:
	// never on the public port, where anyone could read the platform's
	// traffic and error counts. Empty serves no metrics.
	MetricsAddress string `env:"CLOUDPHONE_METRICS_ADDR"`
	// BehindTLS adds Strict-Transport-Security to every answer.
	BehindTLS bool `env:"CLOUDPHONE_BEHIND_TLS"`
}

// ServeMetrics serves m's /metrics at addr until stop is called; it returns
// the address it listens on. A failure to listen is an error.
func ServeMetrics(addr string, m *metrics.Metrics, cfg ServerConfig, log *slog.Logger) (bound string, stop func(context.Context) error, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("listen for metrics on %s (CLOUDPHONE_METRICS_ADDR): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	srv := NewServer(ln.Addr().String(), edge.SecurityHeaders(cfg.BehindTLS)(mux), cfg, log)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "address", ln.Addr().String())
	return ln.Addr().String(), srv.Shutdown, nil
}

// NewServer returns an http.Server with the platform's timeouts.
func NewServer(addr string, h http.Handler, cfg ServerConfig, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       90 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Served is what a process serves: one Instance, or a host of several.
type Served interface {
	http.Handler
	Probe
	Start(ctx context.Context, cfg map[string]string) error
	Stop(ctx context.Context) error
}

// Serve runs one function as its own process until SIGTERM or SIGINT.
func Serve(spec Spec, fn any) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	src := config.FromEnvironment()
	log := slogFrom(src).With("function", spec.Name)
	m := metrics.New()
	in, err := NewInstance(spec, fn, log, m)
	if err != nil {
		return err
	}
	return ServeContext(ctx, in, src, nil, log, m)
}

// ServeContext serves s until ctx is done: it listens at once (on ln, or on
// LISTEN_ADDRESS when ln is nil), runs Start in the background (readiness
// follows it), serves the health paths (and /metrics on
// CLOUDPHONE_METRICS_ADDR, a listener of its own), every answer with the
// security headers, and when ctx is done
// stops accepting, drains in-flight requests and calls Stop.
func ServeContext(ctx context.Context, s Served, src config.Source, ln net.Listener, log *slog.Logger, m *metrics.Metrics) error {
	var cfg ServerConfig
	if err := config.Load(src, &cfg); err != nil {
		return err
	}
	mux := http.NewServeMux()
	MountHealth(mux, s)
	mux.Handle("/", s)
	if cfg.MetricsAddress != "" {
		_, stopMetrics, err := ServeMetrics(cfg.MetricsAddress, m, cfg, log)
		if err != nil {
			return err
		}
		defer stopMetrics(context.Background())
	}

	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", cfg.ListenAddress)
		if err != nil {
			return fmt.Errorf("listen %s: %w", cfg.ListenAddress, err)
		}
	}
	srv := NewServer(ln.Addr().String(), edge.SecurityHeaders(cfg.BehindTLS)(mux), cfg, log)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("listening", "address", ln.Addr().String())

	startCtx, cancelStart := context.WithCancel(ctx)
	defer cancelStart()
	go func() {
		if err := s.Start(startCtx, src.Env); err != nil {
			log.Error("start failed", "err", err)
			return
		}
		log.Info("ready")
	}()

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	log.Info("draining")
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	shutdownErr := srv.Shutdown(drainCtx)
	stopErr := s.Stop(drainCtx)
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return errors.Join(shutdownErr, stopErr)
}

// Logger returns the JSON logger configured by src's LOG_LEVEL.
func Logger(src config.Source) *slog.Logger { return slogFrom(src) }

func slogFrom(src config.Source) *slog.Logger {
	level, _ := src.Lookup("LOG_LEVEL")
	return logging.New(os.Stdout, level)
}
