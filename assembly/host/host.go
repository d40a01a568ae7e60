// Package host serves several functions in one process (one Knative
// Service hosts one, an OpenFaaS bundle a context's, the local platform all
// of them) on the process's shared resources.
package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/edge"
	"github.com/cloudphone/cloudphone/shared/eventauth"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/httpjson"
	"github.com/cloudphone/cloudphone/shared/process"
)

// Host serves several functions in one process: HTTP functions by their routes
// (and OpenFaaS-style at /function/<name>), event functions at
// /function/<name> or, for a bundle, at / routed by the event's type.
type Host struct {
	res        *process.Resources
	log        *slog.Logger
	instances  map[string]*function.Instance
	served     map[string]http.Handler   // the instance, behind the edge when public
	ownMux     map[string]*http.ServeMux // an HTTP function's routes alone, for /function/<name>
	notFound   http.Handler              // behind the edge too, so scans are limited
	order      []string
	byType     map[string][]string
	mux        *http.ServeMux
	events     int    // how many event functions
	firstEvent string // the first of them
}

// NewHost prepares the functions of entries; nothing is opened before Start.
func NewHost(res *process.Resources, entries []function.Entry) (*Host, error) {
	h := &Host{res: res, log: res.Log, instances: map[string]*function.Instance{}, served: map[string]http.Handler{}, ownMux: map[string]*http.ServeMux{}, byType: map[string][]string{}, mux: http.NewServeMux()}
	h.notFound = httpjson.NotFound(h.log)
	var edged *edge.Edge
	for _, e := range entries {
		if _, dup := h.instances[e.Spec.Name]; dup {
			return nil, fmt.Errorf("function %s listed twice", e.Spec.Name)
		}
		fn := deferred(e, res)
		in, err := function.NewInstance(e.Spec, fn, res.Log.With("function", e.Spec.Name), res.Metrics)
		if err != nil {
			return nil, err
		}
		// An event function takes events from the broker only, which proves
		// itself with a token for the function (or delivers in-process).
		switch res.Base.EventAuth {
		case "token":
			in.AdmitEvents(&eventauth.Receiver{Verifier: res.EventVerifier, Senders: []string{eventauth.Broker}})
		case "eventing":
		default:
			return nil, fmt.Errorf("CLOUDPHONE_EVENT_AUTH is %q: want token or eventing", res.Base.EventAuth)
		}
		h.instances[e.Spec.Name] = in
		h.order = append(h.order, e.Spec.Name)
		var served http.Handler = in
		if e.Spec.Public() {
			ed, err := res.Edge()
			if err != nil {
				return nil, err
			}
			served = ed.Wrap(in)
			edged = ed
		}
		h.served[e.Spec.Name] = served
		if e.Spec.Kind == function.KindHTTP {
			own := httpjson.NewMux(h.log)
			for _, route := range e.Spec.Routes {
				h.mux.Handle(route, served)
				own.Handle(route, served)
			}
			h.ownMux[e.Spec.Name] = own
		}
		if e.Spec.Kind == function.KindEvent {
			if h.events == 0 {
				h.firstEvent = e.Spec.Name
			}
			h.events++
		}
		for _, t := range e.Spec.Consumes {
			h.byType[t] = append(h.byType[t], e.Spec.Name)
		}
	}
	if edged != nil {
		h.notFound = edged.Wrap(h.notFound)
	}
	return h, nil
}

// Names lists the hosted functions in the order given.
func (h *Host) Names() []string { return h.order }

// Instance returns the named function.
func (h *Host) Instance(name string) (*function.Instance, bool) {
	in, ok := h.instances[name]
	return in, ok
}

// Start starts every function in parallel and returns their joined errors.
func (h *Host) Start(ctx context.Context, cfg map[string]string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(h.order))
	for i, name := range h.order {
		wg.Go(func() {
			if err := h.instances[name].Start(ctx, cfg); err != nil {
				errs[i] = fmt.Errorf("start %s: %w", name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Stop stops every function.
func (h *Host) Stop(ctx context.Context) error {
	var errs []error
	for _, name := range h.order {
		errs = append(errs, h.instances[name].Stop(ctx))
	}
	return errors.Join(errs...)
}

// Ready is true once every function is ready and the shared pools answer.
func (h *Host) Ready(ctx context.Context) (bool, error) {
	for _, name := range h.order {
		if ok, err := h.instances[name].Ready(ctx); !ok || err != nil {
			return false, err
		}
	}
	if err := h.res.Ping(ctx); err != nil {
		return false, nil
	}
	return true, nil
}

// Alive is true while every function says it is alive.
func (h *Host) Alive(ctx context.Context) (bool, error) {
	for _, name := range h.order {
		if ok, err := h.instances[name].Alive(ctx); !ok || err != nil {
			return false, err
		}
	}
	return true, nil
}

// ServeHTTP routes a request to its function.
func (h *Host) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.Path, "/function/"); ok {
		name, sub, _ := strings.Cut(rest, "/")
		// faas-cli always calls /function/<name>.<namespace>.
		name = strings.TrimSuffix(name, "."+OpenFaaSNamespace)
		in, ok := h.instances[name]
		if !ok {
			apierr.Write(w, r, h.log, apierr.New(apierr.NotFound, "no function named %q", name))
			return
		}
		if sub == "_/health" || sub == "_/ready" {
			serveHealth(w, r, in)
			return
		}
		h.serveFunction(w, r, in, "/"+sub)
		return
	}
	if _, pattern := h.mux.Handler(r); pattern != "" {
		h.mux.ServeHTTP(w, r)
		return
	}
	// Events arrive at /: a broker's Trigger or a PingSource posts there.
	// A bundle routes them by type; a process of one event function takes all.
	if r.Method == http.MethodPost && r.URL.Path == "/" {
		if names := h.byType[r.Header.Get("Ce-Type")]; len(names) == 1 {
			h.instances[names[0]].ServeHTTP(w, r)
			return
		}
		if h.events == 1 {
			h.instances[h.firstEvent].ServeHTTP(w, r)
			return
		}
	}
	h.notFound.ServeHTTP(w, r)
}

// OpenFaaSNamespace is the function namespace OpenFaaS (and faas-cli) use by
// default; /function/<name>.<namespace> reaches the same function.
const OpenFaaSNamespace = "openfaas-fn"

// serveHealth answers a function's own health path as its watchdog would:
// 200 once it is ready, 503 before.
func serveHealth(w http.ResponseWriter, r *http.Request, in *function.Instance) {
	if ok, err := in.Ready(r.Context()); !ok || err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready\n"))
		return
	}
	_, _ = w.Write([]byte("OK\n"))
}

// TakesEvents reports whether r would deliver an event to a function: an
// event function at /function/<name>, or a POST to / (a bundle's events).
func (h *Host) TakesEvents(r *http.Request) bool {
	if rest, ok := strings.CutPrefix(r.URL.Path, "/function/"); ok {
		name, _, _ := strings.Cut(rest, "/")
		in, ok := h.instances[strings.TrimSuffix(name, "."+OpenFaaSNamespace)]
		return ok && in.Spec.Kind == function.KindEvent
	}
	return r.Method == http.MethodPost && r.URL.Path == "/"
}

// serveFunction serves an OpenFaaS-style call: the gateway strips
// /function/<name>, so a function with a single route gets that route's path
// for "/", and any other path as given.
func (h *Host) serveFunction(w http.ResponseWriter, r *http.Request, in *function.Instance, path string) {
	if in.Spec.Kind == function.KindHTTP && path == "/" {
		if len(in.Spec.Routes) != 1 {
			// "/" is none of its routes: say which there are.
			apierr.Write(w, r, h.log, apierr.New(apierr.NotFound, "%s serves %s: call /function/%s/<path>",
				in.Spec.Name, strings.Join(in.Spec.Routes, ", "), in.Spec.Name))
			return
		}
		_, path = function.SplitRoute(in.Spec.Routes[0])
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = path, ""
	if m, ok := h.ownMux[in.Spec.Name]; ok {
		m.ServeHTTP(w, r2) // the function's own routes, so it sees its pattern
		return
	}
	in.ServeHTTP(w, r2)
}

// Deliver hands e to the named event function in-process, exactly as an HTTP
// delivery would (same decoding, status mapping and reply), for the embedded
// broker. A non-nil error means the function does not exist.
func (h *Host) Deliver(ctx context.Context, name string, e event.Event) (int, *event.Event, error) {
	in, ok := h.instances[name]
	if !ok {
		return 0, nil, fmt.Errorf("no function named %q", name)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/function/"+name, nil)
	if err != nil {
		return 0, nil, err
	}
	if err := cehttp.WriteRequest(ctx, binding.ToMessage(&e), req); err != nil {
		return 0, nil, err
	}
	rec := &recorder{header: http.Header{}}
	in.ServeHTTP(rec, req)
	resp := rec.response()
	if resp.StatusCode/100 != 2 || resp.Header.Get("Ce-Id") == "" {
		return resp.StatusCode, nil, nil
	}
	reply, err := binding.ToEvent(ctx, cehttp.NewMessageFromHttpResponse(resp))
	if err != nil {
		return http.StatusBadGateway, nil, fmt.Errorf("%s replied with a malformed event: %w", name, err)
	}
	return resp.StatusCode, reply, nil
}

// deferred wraps e so that its builder runs in Start; before that the
// function answers 503 (HTTP) or a retryable error (events).
func deferred(e function.Entry, res *process.Resources) any {
	d := &deferredFn{entry: e, res: res}
	if e.Spec.Kind == function.KindEvent {
		return &deferredEvent{d}
	}
	return &deferredHTTP{d}
}

type deferredFn struct {
	entry function.Entry
	res   *process.Resources
	fn    atomic.Value // the built function
}

func (d *deferredFn) Start(ctx context.Context, cfg map[string]string) error {
	fn, err := d.entry.Build(ctx, d.res)
	if err != nil {
		return err
	}
	if s, ok := fn.(function.Starter); ok {
		if err := s.Start(ctx, cfg); err != nil {
			return err
		}
	}
	d.fn.Store(fn)
	return nil
}

func (d *deferredFn) Stop(ctx context.Context) error {
	if s, ok := d.fn.Load().(function.Stopper); ok {
		return s.Stop(ctx)
	}
	return nil
}

func (d *deferredFn) Ready(ctx context.Context) (bool, error) {
	fn := d.fn.Load()
	if fn == nil {
		return false, nil
	}
	if r, ok := fn.(function.Readier); ok {
		return r.Ready(ctx)
	}
	return true, nil
}

func (d *deferredFn) Alive(ctx context.Context) (bool, error) {
	if a, ok := d.fn.Load().(function.Aliver); ok {
		return a.Alive(ctx)
	}
	return true, nil
}

type deferredHTTP struct{ *deferredFn }

func (d *deferredHTTP) Handle(w http.ResponseWriter, r *http.Request) {
	fn, ok := d.fn.Load().(function.HTTPFunction)
	if !ok {
		apierr.Write(w, r, d.res.Log, apierr.New(apierr.Unavailable, "%s is starting", d.entry.Spec.Name))
		return
	}
	fn.Handle(w, r)
}

type deferredEvent struct{ *deferredFn }

func (d *deferredEvent) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	fn, ok := d.fn.Load().(function.EventFunction)
	if !ok {
		return nil, apierr.New(apierr.Unavailable, "%s is starting", d.entry.Spec.Name)
	}
	return fn.Handle(ctx, e)
}

// recorder is the in-process delivery's ResponseWriter: it keeps the status,
// the headers and the body the function answers.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

func (r *recorder) response() *http.Response {
	r.WriteHeader(http.StatusOK)
	return &http.Response{StatusCode: r.status, Header: r.header, Body: io.NopCloser(&r.body), ContentLength: int64(r.body.Len())}
}
