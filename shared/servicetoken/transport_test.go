package servicetoken_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cloudphone/cloudphone/shared/servicetoken"
)

func TestClientCallsGuardedRouteWithItsServiceToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv := httptest.NewServer(internalUserRoutes(b))
	t.Cleanup(srv.Close)

	call := func(caller string) (int, string) {
		t.Helper()
		c := servicetoken.Client(b.minter(t, caller), "user")
		req, err := http.NewRequestWithContext(context.Background(), "GET", srv.URL+"/internal/v1/quotas/u1", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("call as %s: %v", caller, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if status, body := call("device"); status != 200 || body != "device" {
		t.Fatalf("device: %d %q, want 200 \"device\"", status, body)
	}
	if status, _ := call("app"); status != 403 {
		t.Fatalf("app: %d, want 403", status)
	}
}

func TestTransportFailsWithoutSendingWhenNoTokenCanBeHad(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sent := false
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { sent = true }))
	t.Cleanup(srv.Close)
	c := servicetoken.Client(b.minter(t, "device"), "nobody")
	if _, err := c.Get(srv.URL); err == nil || sent {
		t.Fatalf("call to an unknown audience: err %v, sent %v; want an error and nothing sent", err, sent)
	}
}
