// Package gateway answers the read-only part of the OpenFaaS gateway's API
// for the local platform, with the types of github.com/openfaas/faas-provider
// (the SDK OpenFaaS providers such as faasd are built on), so that faas-cli
// list, describe, ready and invoke work against `make run`: GET
// /system/functions, GET /system/function/{name}, GET /system/info and GET
// /healthz. Deploying, scaling and deleting functions are a real gateway's
// business: those requests are refused with 405 and say so.
package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"

	"github.com/openfaas/faas-provider/types"

	"github.com/cloudphone/cloudphone/assembly/host"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/function"
)

// Namespace is the only function namespace the local platform has: faas-cli's
// default.
const Namespace = host.OpenFaaSNamespace

// Functions is what the gateway reports on: the hosted functions.
type Functions interface {
	Names() []string
	Instance(name string) (*function.Instance, bool)
}

// Gateway serves the read-only gateway API over fns. Safe for concurrent use.
type Gateway struct {
	fns     Functions
	log     *slog.Logger
	version string
}

// New returns the gateway API over fns; version is reported by /system/info.
func New(fns Functions, version string, log *slog.Logger) *Gateway {
	return &Gateway{fns: fns, log: log, version: version}
}

// Mount adds the gateway's routes to mux.
func (g *Gateway) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /system/functions", g.list)
	mux.HandleFunc("GET /system/function/{name}", g.describe)
	mux.HandleFunc("GET /system/info", g.info)
	mux.HandleFunc("GET /healthz", g.healthz)
	for _, route := range []string{"POST /system/functions", "PUT /system/functions", "DELETE /system/functions",
		"POST /system/scale-function/{name}"} {
		mux.HandleFunc(route, g.readOnly)
	}
}

// namespaceOK reports whether the request names no namespace or the local one.
func namespaceOK(r *http.Request) bool {
	ns := r.URL.Query().Get("namespace")
	return ns == "" || ns == Namespace
}

func (g *Gateway) list(w http.ResponseWriter, r *http.Request) {
	if !namespaceOK(r) {
		apierr.Write(w, r, g.log, apierr.New(apierr.NotFound, "no namespace %q: the local platform has only %s", r.URL.Query().Get("namespace"), Namespace))
		return
	}
	out := make([]types.FunctionStatus, 0, len(g.fns.Names()))
	for _, name := range g.fns.Names() {
		in, _ := g.fns.Instance(name)
		out = append(out, g.status(r.Context(), in))
	}
	writeJSON(w, out)
}

func (g *Gateway) describe(w http.ResponseWriter, r *http.Request) {
	name, ns, _ := strings.Cut(r.PathValue("name"), ".")
	in, ok := g.fns.Instance(name)
	if !ok || !namespaceOK(r) || (ns != "" && ns != Namespace) {
		apierr.Write(w, r, g.log, apierr.New(apierr.NotFound, "no function named %q", r.PathValue("name")))
		return
	}
	writeJSON(w, g.status(r.Context(), in))
}

// status describes one function as the gateway does: its replicas are the
// local process, available once the function is ready.
func (g *Gateway) status(ctx context.Context, in *function.Instance) types.FunctionStatus {
	s := in.Spec
	labels := map[string]string{
		"cloudphone.dev/context": s.Context,
		"cloudphone.dev/kind":    string(s.Kind),
	}
	annotations := map[string]string{}
	if len(s.Routes) > 0 {
		annotations["cloudphone.dev/routes"] = strings.Join(s.Routes, ", ")
	}
	if len(s.Consumes) > 0 {
		annotations["cloudphone.dev/consumes"] = strings.Join(s.Consumes, ", ")
	}
	if s.Schedule != "" {
		annotations["schedule"] = s.Schedule
	}
	st := types.FunctionStatus{
		Name:        s.Name,
		Image:       "cloudphone/function:" + s.Name,
		Namespace:   Namespace,
		Labels:      &labels,
		Annotations: &annotations,
		Secrets:     s.Secrets,
		Replicas:    1,
	}
	if ok, err := in.Ready(ctx); ok && err == nil {
		st.AvailableReplicas = 1
	}
	return st
}

func (g *Gateway) info(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, types.ProviderInfo{
		Name:          "cloudphone-local",
		Orchestration: "local",
		Version:       &types.VersionInfo{Release: g.version, SHA: g.version},
	})
}

// healthz answers 200 once every function is ready, as a gateway does when
// its provider is.
func (g *Gateway) healthz(w http.ResponseWriter, r *http.Request) {
	for _, name := range g.fns.Names() {
		in, _ := g.fns.Instance(name)
		if ok, err := in.Ready(r.Context()); !ok || err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(name + " is not ready\n"))
			return
		}
	}
	_, _ = w.Write([]byte("OK"))
}

func (g *Gateway) readOnly(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", http.MethodGet)
	apierr.Write(w, r, g.log, apierr.New(apierr.MethodNotAllowed,
		"the local platform serves every function of the catalog and deploys nothing: deploy to a real OpenFaaS gateway with faas-cli deploy -f stack.yml"))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
