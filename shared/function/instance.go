package function

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/cloudphone/cloudphone/shared/eventauth"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/metrics"
	"github.com/cloudphone/cloudphone/shared/tracing"
)

// Instance is one function with its lifecycle state: it runs Start once,
// reports readiness only after Start succeeded, and turns the function into an
// http.Handler for its kind. Safe for concurrent use.
type Instance struct {
	Spec    Spec
	Fn      any
	Log     *slog.Logger
	Metrics *metrics.Metrics

	handler http.Handler

	startOnce sync.Once
	mu        sync.Mutex // guards started and startErr, never held across Start
	started   bool
	startErr  error
}

// NewInstance checks that fn has the Handle shape spec.Kind asks for.
func NewInstance(spec Spec, fn any, log *slog.Logger, m *metrics.Metrics) (*Instance, error) {
	in := &Instance{Spec: spec, Fn: fn, Log: log, Metrics: m}
	switch spec.Kind {
	case KindHTTP:
		h, ok := fn.(HTTPFunction)
		if !ok {
			return nil, fmt.Errorf("function %s: %T has no HTTP Handle method", spec.Name, fn)
		}
		in.handler = correlate(in.instrument(http.HandlerFunc(h.Handle)))
	case KindEvent:
		h, ok := fn.(EventFunction)
		if !ok {
			return nil, fmt.Errorf("function %s: %T has no CloudEvents Handle method", spec.Name, fn)
		}
		in.handler = &EventHandler{Spec: spec, Fn: h, Log: log, Metrics: m}
	default:
		return nil, fmt.Errorf("function %s: unknown kind %q", spec.Name, spec.Kind)
	}
	return in, nil
}

// AdmitEvents makes an event function take events only as rc admits them
// (see EventHandler.Auth); it does nothing to an HTTP function.
func (in *Instance) AdmitEvents(rc *eventauth.Receiver) {
	if h, ok := in.handler.(*EventHandler); ok {
		h.Auth = rc
	}
}

// Start runs the function's Start once; a failed Start is returned again on
// later calls.
func (in *Instance) Start(ctx context.Context, cfg map[string]string) error {
	in.startOnce.Do(func() {
		var err error
		if s, ok := in.Fn.(Starter); ok {
			err = s.Start(ctx, cfg)
		}
		in.mu.Lock()
		in.started, in.startErr = true, err
		in.mu.Unlock()
	})
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.startErr
}

// Stop runs the function's Stop.
func (in *Instance) Stop(ctx context.Context) error {
	if s, ok := in.Fn.(Stopper); ok {
		return s.Stop(ctx)
	}
	return nil
}

// Ready is false until Start succeeded, then whatever the function says.
func (in *Instance) Ready(ctx context.Context) (bool, error) {
	in.mu.Lock()
	started, err := in.started, in.startErr
	in.mu.Unlock()
	if !started {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if r, ok := in.Fn.(Readier); ok {
		return r.Ready(ctx)
	}
	return true, nil
}

// Alive is whatever the function says, true when it says nothing.
func (in *Instance) Alive(ctx context.Context) (bool, error) {
	if a, ok := in.Fn.(Aliver); ok {
		return a.Alive(ctx)
	}
	return true, nil
}

// ServeHTTP serves the function's requests (not the health paths).
func (in *Instance) ServeHTTP(w http.ResponseWriter, r *http.Request) { in.handler.ServeHTTP(w, r) }

// instrument counts and times every request in the function's metrics and
// logs it: one line per request, errors included, with the method, the
// route's pattern (never the path or query, which may carry ids and
// tickets), the status and the time taken; the correlation id comes from the
// context.
func (in *Instance) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		span := tracing.NoSpan
		if tracing.Enabled() {
			var ctx context.Context
			ctx, span = tracing.Start(tracing.Extract(r.Context(), r.Header), r.Method, trace.SpanKindServer,
				attribute.String("faas.name", in.Spec.Name), attribute.String("http.request.method", r.Method))
			r = r.WithContext(ctx)
		}
		next.ServeHTTP(sw, r)
		took := time.Since(start)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		if span.IsRecording() {
			name := route
			if !strings.HasPrefix(name, r.Method+" ") {
				name = r.Method + " " + route
			}
			span.SetName(name)
			span.SetAttributes(attribute.String("http.route", route))
			tracing.EndStatus(span, sw.status, http.StatusText(sw.status))
		}
		if in.Metrics != nil {
			in.Metrics.Requests.WithLabelValues(in.Spec.Name, route, strconv.Itoa(sw.status)).Inc()
			in.Metrics.RequestSeconds.WithLabelValues(in.Spec.Name, route).Observe(took.Seconds())
		}
		if in.Log != nil && in.Log.Enabled(r.Context(), slog.LevelInfo) {
			in.Log.LogAttrs(r.Context(), slog.LevelInfo, "request", slog.String("method", r.Method), slog.String("route", route),
				slog.Int("status", sw.status), slog.Float64("duration_ms", float64(took.Microseconds())/1000))
		}
	})
}

// CorrelationHeader carries a request's correlation id in and out.
const CorrelationHeader = "X-Correlation-Id"

// correlate gives every HTTP request a correlation id: the caller's, when it
// sent a well-formed one, or a new one. Logs and the events the request causes
// carry it; the response echoes it.
func correlate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(CorrelationHeader)
		if !wellFormedID(id) {
			id = events.NewID()
		}
		w.Header().Set(CorrelationHeader, id)
		next.ServeHTTP(w, r.WithContext(logging.WithCorrelation(r.Context(), id)))
	})
}

// wellFormedID accepts 1–64 characters of [A-Za-z0-9._-].
func wellFormedID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Probe is something with readiness and liveness: an Instance, or a whole host.
type Probe interface {
	Ready(ctx context.Context) (bool, error)
	Alive(ctx context.Context) (bool, error)
}

// HealthPaths are the paths both platforms probe: Knative Functions'
// readiness/liveness and OpenFaaS' /_/health and /_/ready.
var HealthPaths = []string{"/health/readiness", "/health/liveness", "/_/health", "/_/ready"}

// MountHealth serves the four health paths for p on mux: 200 when the check
// passes, 503 when it says no, 500 when it fails. /_/health follows readiness,
// as OpenFaaS' watchdog answers 503 there until the function has started.
func MountHealth(mux *http.ServeMux, p Probe) {
	ready := probeHandler(p.Ready, "READY")
	alive := probeHandler(p.Alive, "ALIVE")
	mux.Handle("GET /health/readiness", ready)
	mux.Handle("GET /_/ready", ready)
	mux.Handle("GET /_/health", ready)
	mux.Handle("GET /health/liveness", alive)
}

func probeHandler(check func(context.Context) (bool, error), word string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		ok, err := check(ctx)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		switch {
		case err != nil:
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "NOT %s\n", word)
		case !ok:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "NOT %s\n", word)
		default:
			fmt.Fprintln(w, word)
		}
	})
}
