// Package rehearsal drives the platform deployed as separate units on the
// local Docker engine (infra/rehearse): every bundle, device-runtime, the
// ADB gateway and the broker in containers of their own, talking over the
// network with their sender tokens, as on a cluster.
package rehearsal

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/functions/app/apptest"
	"github.com/cloudphone/cloudphone/infra/phone-standin/standinimage"
	"github.com/cloudphone/cloudphone/infra/rehearse"
)

const adminPassword = "admin password for the rehearsal"

// The whole journey across the containers: sign up, buy a plan (the user
// bundle stopped mid-saga and started again by the next delivery, scale
// from zero), create a phone (the broker's container killed meanwhile),
// install an app, see the notification, restart device-runtime (the phone
// keeps running in its container and is reconciled), delete the phone.
func TestTheJourneyAcrossSeparatelyDeployedUnits(t *testing.T) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		t.Skipf("skipped: the rehearsal runs the units in containers and no Docker engine answers (%v)", err)
	}
	begun := time.Now()
	t.Cleanup(func() { t.Logf("the rehearsal took %s, cleanup included", time.Since(begun).Round(time.Millisecond)) })
	if err := standinimage.Ensure(ctx, cli); err != nil {
		t.Fatalf("build the phone stand-in: %v", err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	prefix, tag := "rh_"+id+"_", "rehearsal-"+id
	host := map[string]string{}
	for _, k := range []string{"DATABASE_URL", "REDIS_URL", "S3_ENDPOINT", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "S3_BUCKET", "S3_REGION", "SMTP_URL"} {
		host[k] = os.Getenv(k)
	}
	if host["DATABASE_URL"] == "" || host["REDIS_URL"] == "" {
		t.Fatal("DATABASE_URL and REDIS_URL are not set: run the tests with `make test`, which starts them")
	}
	t.Cleanup(func() { dropDatabases(t, host["DATABASE_URL"], prefix) })
	started := time.Now()
	r, err := rehearse.Up(ctx, rehearse.Options{
		Root: "../..", Run: "rh-" + id, Addr: "127.0.0.1:0", Tag: tag, Build: true,
		Host: host, AdminPassword: adminPassword,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Settings: map[string]string{
			"CLOUDPHONE_DATABASE_PREFIX": prefix,
			"CLOUDPHONE_REDIS_PREFIX":    prefix,
			"CLOUDPHONE_DEVICE_IMAGE":    standinimage.Tag,
			"DEVICE_PORT_RANGE":          "27700-27799",
			"DEVICE_RECONCILE_INTERVAL":  "3s",
			"DEVICE_STOP_TIMEOUT":        "2s",
		},
	})
	// Removed even when Up failed half-way (Up removes what it made) or
	// the test fails: the containers, the phones, the networks, the images.
	t.Cleanup(func() {
		list, _ := cli.ImageList(context.Background(), image.ListOptions{})
		for _, im := range list {
			for _, ref := range im.RepoTags {
				if strings.HasSuffix(ref, ":"+tag) {
					_, _ = cli.ImageRemove(context.Background(), ref, image.RemoveOptions{})
				}
			}
		}
	})
	if err != nil {
		t.Fatalf("rehearsal up: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(context.Background()); err != nil {
			t.Errorf("rehearsal down: %v", err)
		}
	})
	// On failure, what each unit said last (before the cleanup above
	// removes the containers).
	t.Cleanup(func() {
		if t.Failed() {
			for _, u := range r.Units() {
				t.Logf("docker logs --tail 25 %s:\n%s", r.Container(u.Name), tail(cli, r.Container(u.Name), 25))
			}
		}
	})
	t.Logf("rehearsal of %d units up in %s at %s", len(r.Units()), time.Since(started).Round(time.Millisecond), r.URL())
	lap := time.Now()
	step := func(what string) {
		t.Logf("%s in %s", what, time.Since(lap).Round(time.Millisecond))
		lap = time.Now()
	}
	base := r.URL() + "/api/v1"

	// Sign up, fund, buy a plan.
	alice := register(t, base, "alice")
	tok := login(t, base, "alice", "correct horse battery")
	admin := login(t, base, "admin", adminPassword)
	if st := call(t, "POST", base+"/admin/users/"+alice+"/credit", map[string]any{"amount": 100000, "reason": "rehearsal"}, nil, bearer(admin)...); st != http.StatusCreated {
		t.Fatalf("credit: %d", st)
	}
	var order struct {
		ID, State string
		Price     int64
	}
	if st := call(t, "POST", base+"/orders", map[string]string{"plan_id": "basic"}, &order,
		append(bearer(tok), "Idempotency-Key", "rehearsal-1")...); st != http.StatusAccepted {
		t.Fatalf("order: %d", st)
	}
	// Both bundles of the saga scaled to zero mid-saga (killed at once,
	// not drained): the next request or delivery for each starts it
	// again, whatever step the saga had reached.
	stop := 0
	for _, u := range []string{"cloudphone-billing", "cloudphone-user"} {
		if err := cli.ContainerStop(ctx, r.Container(u), container.StopOptions{Timeout: &stop}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 90*time.Second, "the order settles with the billing bundle started again", func() bool {
		call(t, "GET", base+"/orders/"+order.ID, nil, &order, bearer(tok)...)
		return order.State == "active" || order.State == "failed"
	})
	if order.State != "active" {
		t.Fatalf("order ended %s", order.State)
	}
	var bal struct{ Balance int64 }
	call(t, "GET", base+"/balance", nil, &bal, bearer(tok)...)
	if bal.Balance != 100000-order.Price {
		t.Fatalf("balance after the plan = %d, want %d (charged once)", bal.Balance, 100000-order.Price)
	}

	step("signed up and bought a plan, the billing and user bundles stopped mid-saga")

	// A phone, with the broker's container killed as the create's events
	// are in flight: they wait in the outbox and the broker's store.
	var d phone
	if st := call(t, "POST", base+"/devices", map[string]any{"name": "pixel", "cpu_cores": 1, "memory_mb": 512}, &d, bearer(tok)...); st != http.StatusAccepted {
		t.Fatalf("create phone: %d", st)
	}
	crash(ctx, t, cli, r.Container("cloudphone-broker"))
	d = awaitPhone(t, base, tok, d.ID, "running", 2*time.Minute)
	// The phone's quota was reserved with the user bundle: it runs again,
	// started by the saga's delivery or by the device bundle's call.
	if c, err := cli.ContainerInspect(ctx, r.Container("cloudphone-user")); err != nil || !c.State.Running {
		t.Fatalf("the user bundle is not running again: %v", err)
	}

	step("the phone running, the broker killed and started again")

	// An app, installed, and the user told.
	apk := apptest.Build(t, apptest.Spec{Package: "org.example.rehearsal", VersionCode: 1, VersionName: "1.0", Label: "Rehearsal"})
	appID := apptest.Uploaded(t, r.URL(), tok, apk).ID
	if st := call(t, "POST", base+"/devices/"+d.ID+"/apps", map[string]string{"app_id": appID}, nil, bearer(tok)...); st != http.StatusAccepted {
		t.Fatalf("install: %d", st)
	}
	eventually(t, 90*time.Second, "the app is installed", func() bool {
		var l struct {
			Apps []struct{ Package, State string }
		}
		call(t, "GET", base+"/devices/"+d.ID+"/apps", nil, &l, bearer(tok)...)
		return slices.ContainsFunc(l.Apps, func(a struct{ Package, State string }) bool {
			return a.Package == "org.example.rehearsal" && a.State == "installed"
		})
	})
	eventually(t, 60*time.Second, "the notification of the install", func() bool {
		var inbox struct{ Items []struct{ Type string } }
		call(t, "GET", base+"/notifications", nil, &inbox, bearer(tok)...)
		return slices.ContainsFunc(inbox.Items, func(n struct{ Type string }) bool { return n.Type == "app.installed" })
	})

	step("the app installed and the user told")

	// device-runtime restarted: the phone keeps running in the same
	// container and the restarted runtime reconciles it.
	before := d.ContainerID
	if err := cli.ContainerRestart(ctx, r.Container("cloudphone-device-runtime"), container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.Ready(ctx, "cloudphone-device-runtime"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(7 * time.Second) // two reconcile rounds
	d = awaitPhone(t, base, tok, d.ID, "running", 10*time.Second)
	if d.ContainerID != before {
		t.Fatalf("the phone's container changed across the runtime's restart: %s → %s", before, d.ContainerID)
	}
	if c, err := cli.ContainerInspect(ctx, before); err != nil || !c.State.Running {
		t.Fatalf("the phone's container is not running: %v", err)
	}

	step("device-runtime restarted, the phone reconciled")

	if st := call(t, "DELETE", base+"/devices/"+d.ID, nil, nil, bearer(tok)...); st != http.StatusAccepted {
		t.Fatalf("delete: %d", st)
	}
	awaitPhone(t, base, tok, d.ID, "deleted", time.Minute)
	eventually(t, 30*time.Second, "the phone's container is removed", func() bool {
		_, err := cli.ContainerInspect(ctx, before)
		return client.IsErrNotFound(err)
	})
	step("the phone deleted and its container removed")
}

// crash kills the container's process with SIGKILL, as a crash would: the
// engine starts it again by its restart policy, as an orchestrator would.
// Without the right to signal the process (the engine runs as another
// user), the container is killed and started again through the engine.
func crash(ctx context.Context, t *testing.T, cli *client.Client, name string) {
	t.Helper()
	c, err := cli.ContainerInspect(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if c.State == nil || c.State.Pid == 0 {
		t.Fatalf("%s is not running", name)
	}
	if err := syscall.Kill(c.State.Pid, syscall.SIGKILL); err == nil {
		return
	}
	if err := cli.ContainerKill(ctx, name, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	if err := cli.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
}

// tail is the last n lines the container wrote.
func tail(cli *client.Client, name string, n int) string {
	rc, err := cli.ContainerLogs(context.Background(), name, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(n)})
	if err != nil {
		return err.Error()
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		return err.Error()
	}
	return out.String()
}

type phone struct {
	ID          string `json:"id"`
	State       string `json:"state"`
	ContainerID string `json:"container_id"`
	LastError   string `json:"last_error"`
}

func awaitPhone(t *testing.T, base, tok, id, want string, within time.Duration) phone {
	t.Helper()
	var d phone
	eventually(t, within, "phone "+want, func() bool {
		call(t, "GET", base+"/devices/"+id, nil, &d, bearer(tok)...)
		return d.State == want
	}, func() string { return fmt.Sprintf("the phone is %s (last error %q)", d.State, d.LastError) })
	return d
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

func register(t *testing.T, base, username string) string {
	t.Helper()
	var u struct{ ID string }
	if st := call(t, "POST", base+"/auth/register", map[string]string{
		"username": username, "email": username + "@example.com", "password": "correct horse battery",
	}, &u); st != http.StatusCreated || u.ID == "" {
		t.Fatalf("register %s: %d", username, st)
	}
	return u.ID
}

func login(t *testing.T, base, name, password string) string {
	t.Helper()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if st := call(t, "POST", base+"/auth/login", map[string]string{"login": name, "password": password}, &tok); st != http.StatusOK {
		t.Fatalf("login %s: %d", name, st)
	}
	return tok.AccessToken
}

// call sends a JSON request and decodes a JSON answer into out (if not nil).
func call(t *testing.T, method, url string, body, out any, header ...string) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, raw, err)
		}
	}
	return resp.StatusCode
}

// eventually polls cond every 200 ms until it holds or timeout passes;
// then it fails with what state says, if given.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool, state ...func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			for _, s := range state {
				what += ": " + s()
			}
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// dropDatabases drops the rehearsal's databases (their names start with
// prefix).
func dropDatabases(t *testing.T, dbURL, prefix string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Logf("drop the rehearsal's databases: %v", err)
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, prefix)
	if err != nil {
		t.Logf("drop the rehearsal's databases: %v", err)
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Logf("drop the rehearsal's databases: %v", err)
		return
	}
	for _, n := range names {
		if _, err := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("drop %s: %v", n, err)
		}
	}
}
