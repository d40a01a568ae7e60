package rehearse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/shared/apierr"
)

// front is the rehearsal's gateway, as OpenFaaS' gateway is a cluster's:
// /function/<unit>/<path> goes to <path> of the unit's container (the
// prefix stripped), and the platform's public routes (/api/v1/..., the
// console) go to the unit that serves the route's function, by the
// catalog. A unit whose container is stopped is started on the next request
// for it and the request waits until it is ready: scale from zero.
type front struct {
	log     *slog.Logger
	units   map[string]bool
	routes  *http.ServeMux
	proxy   *httputil.ReverseProxy
	resolve func(ctx context.Context, unit string) (string, error) // the container's address now
	wake    func(ctx context.Context, unit string) (string, error) // start it, wait until ready

	mu    sync.Mutex
	flock map[string]*sync.Mutex // one start of a unit at a time
}

type unitKey struct{}

func newFront(units []Unit, log *slog.Logger, resolve, wake func(context.Context, string) (string, error)) *front {
	f := &front{log: log, units: map[string]bool{}, routes: http.NewServeMux(), resolve: resolve, wake: wake,
		flock: map[string]*sync.Mutex{}}
	for _, u := range units {
		f.units[u.Name] = true
		for _, name := range u.Functions {
			s, _ := catalog.ByName(name)
			for _, route := range s.Routes {
				f.routes.Handle(route, f.to(u.Name, ""))
			}
		}
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DialContext = f.dial
	transport.MaxIdleConnsPerHost = 32
	f.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			unit := pr.In.Context().Value(unitKey{}).(string)
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", unit+":8080"
			pr.SetXForwarded()
		},
		Transport:     transport,
		FlushInterval: -1, // event streams and logs as they come
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			apierr.Write(w, r, log, apierr.New(apierr.Unavailable, "%s is not reachable: %v", r.Context().Value(unitKey{}), err))
		},
	}
	return f
}

// to proxies to unit, with the path replaced when path is not empty.
func (f *front) to(unit, path string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(context.WithValue(r.Context(), unitKey{}, unit))
		if path != "" {
			r.URL.Path, r.URL.RawPath = path, ""
		}
		f.proxy.ServeHTTP(w, r)
	})
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		w.WriteHeader(http.StatusOK)
		return
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/function/"); ok {
		name, sub, _ := strings.Cut(rest, "/")
		name = strings.TrimSuffix(name, ".openfaas-fn")
		if !f.units[name] {
			apierr.Write(w, r, f.log, apierr.New(apierr.NotFound, "no function named %q", name))
			return
		}
		f.to(name, "/"+sub).ServeHTTP(w, r)
		return
	}
	f.routes.ServeHTTP(w, r)
}

// dial reaches a unit's container at the address it has now, starting it
// first when it is not running. No address is remembered across dials: a
// stopped container's address goes to the next container started on the
// network, which would then get another unit's requests. Idle connections
// are kept by the proxy's transport, so a look-up is made per new
// connection only.
func (f *front) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	unit, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	if found, err := f.resolve(ctx, unit); err == nil {
		if c, err := d.DialContext(ctx, network, found); err == nil {
			return c, nil
		}
	}
	// Stopped, or started and not listening yet: one start (and wait
	// until ready) per unit at a time.
	f.mu.Lock()
	lock := f.flock[unit]
	if lock == nil {
		lock = &sync.Mutex{}
		f.flock[unit] = lock
	}
	f.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()
	woken, err := f.wake(ctx, unit)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", unit, err)
	}
	c, err := d.DialContext(ctx, network, woken)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("%s started but not reachable", unit), err)
	}
	return c, nil
}
