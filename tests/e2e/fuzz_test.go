package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/shared/function"
)

// fuzzRoutes are the public routes that take a JSON body; {user} is replaced
// by a real user's id, so the handlers get past the path checks.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/api/v1/auth/register"},
	{"POST", "/api/v1/auth/login"},
	{"POST", "/api/v1/auth/refresh"},
	{"POST", "/api/v1/auth/logout"},
	{"PUT", "/api/v1/admin/users/{user}/roles"},
	{"PUT", "/api/v1/admin/users/{user}/status"},
	{"PUT", "/api/v1/admin/ip-bans/203.0.113.0/24"},
	{"POST", "/api/v1/admin/plans"},
	{"PUT", "/api/v1/admin/plans/basic"},
	{"POST", "/api/v1/admin/users/{user}/credit"},
	{"POST", "/api/v1/orders"},
	{"POST", "/api/v1/payments/webhook"},
	{"POST", "/api/v1/devices"},
	{"PUT", "/api/v1/admin/nodes/local"},
}

// FuzzPublicRoutes sends arbitrary JSON bodies to every public route that
// decodes one, on the running platform, as an admin: whatever the body, the
// answer is a success or a client error with the platform's error shape,
// never a 500 and never a crash. (`make fuzz` runs it with -fuzz; `make test`
// runs the seeds.)
func FuzzPublicRoutes(f *testing.F) {
	e := newEnv(f)
	e.adminPassword = "admin password for fuzzing"
	// Phones are not created on Docker here: the device commands just wait.
	entries := slices.DeleteFunc(catalog.Entries(), func(en function.Entry) bool { return en.Spec.Name == "device-runtime" })
	p := startEntries(f, e, &subscriber{}, entries)
	admin := login(f, p.URL(), "admin", e.adminPassword)
	victim := register(f, p.URL(), "fuzzvictim")

	for i := range fuzzRoutes {
		for _, body := range []string{`{}`, `{"username":"a","email":"b","password":"c"}`, `{"roles":["admin"]}`,
			`{"status":"disabled"}`, `{"amount":100,"reason":"x"}`, `{"plan_id":"basic"}`, `{"name":"p","cpu_cores":1,"memory_mb":1024}`,
			`{"id":"plan","name":"x","price":1,"currency":"USD","period_days":30,"quota":{}}`, `[`, `null`, `{"a":"\u0000"}`} {
			f.Add(uint8(i), body)
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, body string) {
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		path := strings.ReplaceAll(r.path, "{user}", victim.ID)
		req, err := http.NewRequestWithContext(context.Background(), r.method, p.URL()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Idempotency-Key", "fuzz-key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%s %s with %q: %d %s", r.method, path, body, resp.StatusCode, raw)
		}
		if resp.StatusCode >= 400 {
			var e apiError
			if json.Unmarshal(raw, &e) != nil || e.Error.Code == "" {
				t.Fatalf("%s %s with %q: %d without the error shape: %s", r.method, path, body, resp.StatusCode, raw)
			}
		}
	})
}
