package rehearse

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// The gateway sends a public route to the unit of stack.yml that serves it
// and /function/<unit>/<path> to <path> of that unit; a unit whose
// container is down is woken once and the request waits for it.
func TestGatewayRoutesByTheStackAndWakesAStoppedUnit(t *testing.T) {
	units, err := ReadStack("../../stack.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(units) < 3 {
		t.Fatalf("stack.yml has %d units", len(units))
	}
	backends := map[string]string{}
	for _, u := range units {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, u.Name+" "+r.URL.Path)
		}))
		t.Cleanup(srv.Close)
		backends[u.Name] = strings.TrimPrefix(srv.URL, "http://")
	}
	var mu sync.Mutex
	running := map[string]bool{}
	for name := range backends {
		running[name] = name != "cloudphone-billing" // billing is scaled to zero
	}
	woken := 0
	resolve := func(_ context.Context, unit string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if !running[unit] {
			return "", context.Canceled
		}
		return backends[unit], nil
	}
	wake := func(_ context.Context, unit string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		woken++
		running[unit] = true
		return backends[unit], nil
	}
	f := newFront(units, slog.New(slog.NewTextHandler(io.Discard, nil)), resolve, wake)
	gw := httptest.NewServer(f)
	t.Cleanup(gw.Close)
	for path, want := range map[string]string{
		"/api/v1/auth/login":                                          "cloudphone-user /api/v1/auth/login",
		"/api/v1/orders":                                              "cloudphone-billing /api/v1/orders",
		"/function/cloudphone-broker":                                 "cloudphone-broker /",
		"/function/cloudphone-user.openfaas-fn/function/x":            "cloudphone-user /function/x",
		"/function/cloudphone-billing/function/billing-purchase-saga": "cloudphone-billing /function/billing-purchase-saga",
	} {
		resp, err := http.Post(gw.URL+path, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != want {
			t.Errorf("POST %s reached %q, want %q", path, b, want)
		}
	}
	if woken != 1 {
		t.Errorf("billing woken %d times, want once", woken)
	}
	resp, err := http.Get(gw.URL + "/function/nobody/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown unit: %d, want 404", resp.StatusCode)
	}
}
