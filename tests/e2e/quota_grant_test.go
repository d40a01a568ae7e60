package e2e

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/functions/user/userfunctions"
	"github.com/cloudphone/cloudphone/infra/local"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/servicetoken"
)

const quotaAdminPassword = "admin password for e2e"

// quotaPlatform is a running platform whose admin password and service-token
// key the test knows.
type quotaPlatform struct {
	*running
	minter func(caller string) string
}

// startWithAdmin runs every catalog function with the admin account created
// with quotaAdminPassword and a service-token key pair of the test's own.
func startWithAdmin(t *testing.T) quotaPlatform {
	t.Helper()
	e := newEnv(t)
	priv, pub, err := servicetoken.GenerateKeyStrings()
	if err != nil {
		t.Fatal(err)
	}
	e.extra = map[string]string{"CLOUDPHONE_SERVICE_TOKEN_KEY": priv, "CLOUDPHONE_SERVICE_TOKEN_PUBLIC_KEY": pub,
		"CLOUDPHONE_METRICS_ADDR": freeAddr(t)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := local.Start(ctx, local.Options{
		Config: local.Config{
			Addr:          "127.0.0.1:0",
			DataDir:       e.dataDir,
			DatabaseURL:   mustEnv(t, "DATABASE_URL"),
			RedisURL:      mustEnv(t, "REDIS_URL"),
			TriggersDir:   "../../triggers",
			AdminPassword: quotaAdminPassword,
		},
		Env:       config.FromMap(e.config()),
		Entries:   catalog.Entries(),
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Bootstrap: userfunctions.Bootstrap(io.Discard),
	})
	if err != nil {
		t.Fatalf("start platform: %v", err)
	}
	r := &running{Platform: p}
	t.Cleanup(func() {
		if !r.stopped {
			_ = p.Shutdown(context.Background())
		}
	})
	key, err := servicetoken.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	opt, err := redis.ParseURL(p.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return quotaPlatform{running: r, minter: func(caller string) string {
		tok, err := servicetoken.NewMinter(caller, key, servicetoken.MinterOptions{
			Redis: rdb, Log: logging.Discard(), KeyPrefix: e.prefix + "svctoken:",
		}).Token(context.Background(), servicetoken.ContextUser)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}}
}

func login(t testing.TB, base, login, password string) string {
	t.Helper()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if status := call(t, "POST", base+"/api/v1/auth/login", map[string]string{"login": login, "password": password}, &tok); status != 200 {
		t.Fatalf("login %s: %d", login, status)
	}
	return tok.AccessToken
}

// A grant command posted to the broker reaches user-quota-grants, and the
// user sees the raised quota; the device context then reserves against it
// with a service token, which public routes refuse.
func TestQuotaGrantCommandThroughTheBrokerRaisesTheUsersQuota(t *testing.T) {
	t.Parallel()
	p := startWithAdmin(t)
	base := p.URL()
	alice := register(t, base, "alice")
	aliceToken := login(t, base, "alice", "correct horse battery")
	adminToken := login(t, base, "admin", quotaAdminPassword)
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

	var page user.UserPage
	if status := call(t, "GET", base+"/api/v1/admin/users?q=ali", nil, &page, bearer(adminToken)...); status != 200 ||
		len(page.Users) != 1 || page.Users[0].ID != alice.ID {
		t.Fatalf("admin list: %d %+v", status, page)
	}
	if status := call(t, "GET", base+"/api/v1/admin/users", nil, nil, bearer(aliceToken)...); status != 403 {
		t.Fatalf("alice on the admin list: %d, want 403", status)
	}

	grant := userevents.QuotaGrantRequested{SchemaVersion: 1, GrantID: "order-e2e-1", UserID: alice.ID, PlanID: "pro",
		Limits: userevents.Limits{MaxDevices: 4, MaxRunningDevices: 2, MaxCPUCores: 8, MaxMemoryMB: 8192, MaxStorageGB: 64, DeviceMaxCPUCores: 4, DeviceMaxMemoryMB: 4096}}
	e, err := events.New(context.Background(), userevents.EventQuotaGrantRequested, "/cloudphone/billing/e2e", grant.GrantID, grant)
	if err != nil {
		t.Fatal(err)
	}
	if status := p.sendEvent(t, e); status != http.StatusAccepted {
		t.Fatalf("broker ingress: %d", status)
	}
	want := user.FreeTier.Plus(grant.Limits)
	var q user.Quota
	eventually(t, 10*time.Second, "alice's quota never showed the grant", func() bool {
		q = user.Quota{}
		call(t, "GET", base+"/api/v1/quotas/me", nil, &q, bearer(aliceToken)...)
		return q.Limits == want
	})

	device := p.minter("device")
	reserve := base + "/internal/v1/quotas/" + alice.ID + "/reserve"
	body := user.ReserveRequest{DeviceID: "dev-e2e", CPUCores: 4, MemoryMB: 4096, StorageGB: 8}
	if status := call(t, "POST", reserve, body, nil, bearer(device)...); status != 200 {
		t.Fatalf("device reserves a plan-sized device: %d", status)
	}
	if status := call(t, "POST", reserve, body, nil, bearer(aliceToken)...); status != 401 {
		t.Fatalf("user token on an internal route: %d, want 401", status)
	}
	if status := call(t, "POST", reserve, body, nil, bearer(p.minter("billing"))...); status != 403 {
		t.Fatalf("billing reserving: %d, want 403", status)
	}
	if status := call(t, "GET", base+"/api/v1/users/me", nil, nil, bearer(device)...); status != 401 {
		t.Fatalf("service token on a public route: %d, want 401", status)
	}
	call(t, "GET", base+"/api/v1/quotas/me", nil, &q, bearer(aliceToken)...)
	if q.Usage != (user.Usage{Devices: 1, CPUCores: 4, MemoryMB: 4096, StorageGB: 8}) {
		t.Fatalf("usage after the reserve: %+v", q.Usage)
	}
}
