package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// Every answer of the platform carries the security headers, whoever
// answers it (health probes, the broker ingress, an unknown route, an
// internal route refusing a caller, the console), and /metrics is served
// only on its own listener (CLOUDPHONE_METRICS_ADDR), not on the public port.
func TestEveryAnswerCarriesSecurityHeadersAndMetricsAreNotOnThePublicPort(t *testing.T) {
	t.Parallel()
	metricsAddr := freeAddr(t)
	e := newEnv(t)
	e.extra = map[string]string{"CLOUDPHONE_METRICS_ADDR": metricsAddr}
	p := start(t, e, &subscriber{})
	if p.MetricsURL() != "http://"+metricsAddr+"/metrics" {
		t.Fatalf("metrics URL %q", p.MetricsURL())
	}

	for _, r := range []struct{ method, path string }{
		{"GET", "/health/readiness"}, {"GET", "/health/liveness"}, {"GET", "/metrics"},
		{"GET", "/no/such/route"}, {"POST", "/broker/cloudphone"}, {"GET", "/internal/v1/quotas/00000000-0000-0000-0000-000000000000"},
		{"GET", "/api/v1/users/me"}, {"GET", "/console/"},
	} {
		req, _ := http.NewRequest(r.method, p.URL()+r.path, strings.NewReader(""))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h := resp.Header
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" ||
			h.Get("Referrer-Policy") != "no-referrer" || h.Get("Content-Security-Policy") == "" {
			t.Errorf("%s %s (%d) lacks the security headers: %v", r.method, r.path, resp.StatusCode, h)
		}
		if r.path == "/metrics" && (resp.StatusCode == http.StatusOK || strings.Contains(string(body), "cloudphone_")) {
			t.Errorf("the public port serves /metrics: %d", resp.StatusCode)
		}
	}

	resp, err := http.Get(p.MetricsURL())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "cloudphone_http_requests_total") {
		t.Fatalf("metrics listener: %d %.200s", resp.StatusCode, body)
	}
}
