package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/assembly/host"
	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/functions/user/userfunctions"
	"github.com/cloudphone/cloudphone/infra/local/broker"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/metrics"
	"github.com/cloudphone/cloudphone/shared/process"
)

// The OpenFaaS path rehearsed on one machine: the user and billing bundles
// each in their own host with their own resources (as their own OpenFaaS
// functions would be), a stand-in for the gateway that strips
// /function/<bundle> as OpenFaaS does, and the deployable broker unit with
// its own store, reached over HTTP both ways with sender tokens. A purchase
// made through the public API goes through every saga step and ends active.
func TestOpenFaaSPathBuysAPlanThroughTheDeployableBroker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	keyPair := func() (string, string) {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(priv.Seed()), base64.StdEncoding.EncodeToString(pub)
	}
	env := e.config()
	env["DATABASE_URL"], env["REDIS_URL"] = mustEnv(t, "DATABASE_URL"), mustEnv(t, "REDIS_URL")
	env["CLOUDPHONE_SERVICE_TOKEN_KEY"], env["CLOUDPHONE_SERVICE_TOKEN_PUBLIC_KEY"] = keyPair()
	env["CLOUDPHONE_USER_TOKEN_KEY"], env["CLOUDPHONE_USER_TOKEN_PUBLIC_KEY"] = keyPair()

	// The broker unit, made as infra/cmd/broker makes it.
	keys, err := process.New(config.FromMap(env), log, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := db.Open(ctx, env["DATABASE_URL"], e.prefix+"cloudphone_broker", broker.Migrations)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	triggers, err := broker.LoadTriggers("../../triggers")
	if err != nil {
		t.Fatal(err)
	}
	var gatewayURL string
	deliver := &broker.HTTPDeliverer{Signer: keys.EventSigner, URL: func(sub string) string {
		s, _ := catalog.ByName(sub)
		return gatewayURL + "/function/" + catalog.BundleOf(s) + "/function/" + sub
	}}
	b, err := broker.New(pool, triggers, deliver, broker.Options{
		Log: log, Policy: function.EventPolicy(catalog.All()), Verifier: keys.EventVerifier,
		PollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	unit := broker.NewUnit(b, pool, nil, log)
	if err := unit.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unit.Stop(context.Background()) })
	ingress := httptest.NewServer(unit)
	t.Cleanup(ingress.Close)

	// The bundles, each sending to the unit, behind a gateway stand-in
	// that routes /function/<bundle>/... as OpenFaaS does.
	var mu sync.Mutex // bundles fills while the first ones already answer
	bundles := map[string]*host.Host{}
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, _ := strings.CutPrefix(r.URL.Path, "/function/")
		name, sub, _ := strings.Cut(rest, "/")
		mu.Lock()
		h, ok := bundles[name]
		mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = "/"+sub, ""
		h.ServeHTTP(w, r2)
	}))
	t.Cleanup(gateway.Close)
	gatewayURL = gateway.URL
	for _, name := range []string{"cloudphone-user", "cloudphone-billing"} {
		benv := maps.Clone(env)
		benv["BROKER_URL"] = ingress.URL + "/"
		benv["CLOUDPHONE_USER_URL"] = gatewayURL + "/function/cloudphone-user"
		res, err := process.New(config.FromMap(benv), log, metrics.New(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = res.Close() })
		var entries []function.Entry
		for _, s := range catalog.Bundles()[name] {
			en, _ := catalog.Entry(s.Name)
			entries = append(entries, en)
		}
		h, err := host.NewHost(res, entries)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Start(ctx, benv); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Stop(context.Background()) })
		if name == "cloudphone-user" {
			if err := userfunctions.Bootstrap(io.Discard)(ctx, res, "admin-password-openfaas"); err != nil {
				t.Fatal(err)
			}
		}
		mu.Lock()
		bundles[name] = h
		mu.Unlock()
	}
	users, bill := gateway.URL+"/function/cloudphone-user", gateway.URL+"/function/cloudphone-billing"

	u := register(t, users, "olivia")
	admin := login(t, users, "admin", "admin-password-openfaas")
	if st := call(t, "POST", bill+"/api/v1/admin/users/"+u.ID+"/credit", map[string]any{"amount": 100000, "reason": "e2e"}, nil,
		"Authorization", "Bearer "+admin); st != http.StatusCreated {
		t.Fatalf("credit: %d", st)
	}
	tok := login(t, users, "olivia", "correct horse battery")
	var o billing.Order
	if st := call(t, "POST", bill+"/api/v1/orders", map[string]string{"plan_id": "basic"}, &o,
		"Authorization", "Bearer "+tok, "Idempotency-Key", "openfaas-1"); st != http.StatusAccepted {
		t.Fatalf("order: %d", st)
	}
	eventually(t, 30*time.Second, "the order settles through the deployable broker", func() bool {
		call(t, "GET", bill+"/api/v1/orders/"+o.ID, nil, &o, "Authorization", "Bearer "+tok)
		return o.Status == billing.OrderActive || o.Status == billing.OrderFailed
	})
	if o.Status != billing.OrderActive {
		t.Fatalf("order ended %s: %+v", o.Status, o)
	}

	// A producer's event straight to a bundle's function is refused: only
	// the broker's token is admitted there.
	req, _ := http.NewRequest("POST", gateway.URL+"/function/cloudphone-user/function/user-quota-grants", strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	if err := keys.EventSigner.Authorize(req, "billing", "user-quota-grants"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("billing straight to user-quota-grants: %d, want 403", resp.StatusCode)
	}
}
