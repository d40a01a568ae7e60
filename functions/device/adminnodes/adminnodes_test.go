package adminnodes_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/adminnodes"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/tests/devicetest"
)

func TestOnlyAdminsSeeAndChangeNodes(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	v := env.Users.Service.Verifier()
	check := func(_ context.Context, _, dockerHost string) error {
		if dockerHost == "tcp://10.0.0.3:2376" {
			return apierr.New(apierr.Unprocessable, "engine_unreachable: no answer")
		}
		return nil
	}
	fn := adminnodes.New(env.Service, v, check, logging.Discard())
	alice := env.User(t, "alice")
	do := func(method, path, token, body string, out any) int {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		fn.Handle(rec, req)
		if out != nil {
			_ = json.Unmarshal(rec.Body.Bytes(), out)
		}
		return rec.Code
	}
	if code := do("GET", "/api/v1/admin/nodes", "", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	if code := do("GET", "/api/v1/admin/nodes", alice.Token, "", nil); code != http.StatusForbidden {
		t.Fatalf("a user: %d", code)
	}
	// An admin token, issued with the user context's key.
	iss := auth.NewIssuer(mustKey(t, env.Users.Config.TokenKey), env.Users.Config.AccessTokenTTL)
	adminTok, _, err := iss.Issue(devicetest.Admin())
	if err != nil {
		t.Fatal(err)
	}
	var list adminnodes.List
	if code := do("GET", "/api/v1/admin/nodes", adminTok, "", &list); code != http.StatusOK || len(list.Nodes) != 1 || list.Nodes[0].Name != "local" || list.Nodes[0].CPUCores != 64 {
		t.Fatalf("admin list: %d %+v", code, list)
	}
	var n device.Node
	path := "/api/v1/admin/nodes/" + list.Nodes[0].ID
	if code := do("PUT", path, adminTok, `{"cpu_cores":8,"status":"draining"}`, &n); code != http.StatusOK || n.CPUCores != 8 || n.Status != device.NodeDraining || n.MemoryMB != 262144 {
		t.Fatalf("admin update: %d %+v", code, n)
	}
	if code := do("PUT", path, adminTok, `{"status":"gone"}`, nil); code != http.StatusBadRequest {
		t.Fatalf("bad status: %d", code)
	}
	if code := do("PUT", "/api/v1/admin/nodes/00000000-0000-4000-8000-000000000000", adminTok, `{"cpu_cores":1}`, nil); code != http.StatusNotFound {
		t.Fatalf("unknown node: %d", code)
	}
	if code := do("PUT", path, alice.Token, `{"cpu_cores":1}`, nil); code != http.StatusForbidden {
		t.Fatalf("a user's update: %d", code)
	}

	body := `{"name":"node2","docker_host":"tcp://10.0.0.2:2376","adb_host":"10.0.0.2","cpu_cores":8,"memory_mb":8192,"labels":{"zone":"b"}}`
	if code := do("POST", "/api/v1/admin/nodes", alice.Token, body, nil); code != http.StatusForbidden {
		t.Fatalf("a user's add: %d", code)
	}
	var added device.Node
	if code := do("POST", "/api/v1/admin/nodes", adminTok, body, &added); code != http.StatusCreated || added.Name != "node2" ||
		added.Labels["zone"] != "b" || added.Health != device.NodeUp {
		t.Fatalf("admin add: %d %+v", code, added)
	}
	var refused apierr.Body
	body = `{"name":"node3","docker_host":"tcp://10.0.0.3:2376","adb_host":"10.0.0.3","cpu_cores":8,"memory_mb":8192}`
	if code := do("POST", "/api/v1/admin/nodes", adminTok, body, &refused); code != http.StatusUnprocessableEntity ||
		!strings.HasPrefix(refused.Error.Message, "engine_unreachable:") {
		t.Fatalf("a node whose engine fails the check: %d %+v", code, refused)
	}
	if code := do("DELETE", path, adminTok, "", nil); code != http.StatusNoContent {
		t.Fatalf("delete the empty node: %d", code)
	}
	if code := do("DELETE", path, adminTok, "", nil); code != http.StatusNotFound {
		t.Fatalf("delete it again: %d", code)
	}
	if code := do("GET", "/api/v1/admin/nodes", adminTok, "", &list); code != http.StatusOK || len(list.Nodes) != 1 || list.Nodes[0].Name != "node2" {
		t.Fatalf("list after delete: %d %+v", code, list)
	}
}

func mustKey(t *testing.T, s string) []byte {
	t.Helper()
	k, err := auth.ParsePrivateKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
