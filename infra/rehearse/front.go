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
	"time"

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
	addrs map[string]string
	flock map[string]*sync.Mutex
}

type unitKey struct{}

func newFront(units []Unit, log *slog.Logger, resolve, wake func(context.Context, string) (string, error)) *front {
	f := &front{log: log, units: map[string]bool{}, routes: http.NewServeMux(), resolve: resolve, wake: wake,
		addrs: map[string]string{}, flock: map[string]*sync.Mutex{}}
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

// dial reaches a unit's container: at its last known address, else (it was
// stopped, or restarted with another address) after looking it up again
// and, when it is not running, starting it.
func (f *front) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	unit, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	f.mu.Lock()
	known := f.addrs[unit]
	lock := f.flock[unit]
	if lock == nil {
		lock = &sync.Mutex{}
		f.flock[unit] = lock
	}
	f.mu.Unlock()
	if known != "" {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := d.DialContext(dctx, network, known)
		cancel()
		if err == nil {
			return c, nil
		}
	}
	// One look-up (and start) per unit at a time.
	lock.Lock()
	defer lock.Unlock()
	f.mu.Lock()
	if now := f.addrs[unit]; now != known && now != "" {
		f.mu.Unlock()
		return d.DialContext(ctx, network, now)
	}
	f.mu.Unlock()
	found, err := f.resolve(ctx, unit)
	if err == nil && found != known {
		if c, err := d.DialContext(ctx, network, found); err == nil {
			f.remember(unit, found)
			return c, nil
		}
	}
	woken, err := f.wake(ctx, unit)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", unit, err)
	}
	f.remember(unit, woken)
	c, err := d.DialContext(ctx, network, woken)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("%s started but not reachable", unit), err)
	}
	return c, nil
}

func (f *front) remember(unit, addr string) {
	f.mu.Lock()
	f.addrs[unit] = addr
	f.mu.Unlock()
}
