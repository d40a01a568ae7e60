package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/functions/app"
	"github.com/cloudphone/cloudphone/functions/app/apptest"
	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/adb"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/objectstore"
)

// contextDB opens one of p's context databases directly.
func (p devicePlatform) contextDB(t *testing.T, database string) *pgxpool.Pool {
	t.Helper()
	u, err := url.Parse(mustEnv(t, "DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + p.prefix + database
	pool, err := pgxpool.New(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// upload uploads the APK at path as the bearer of token and returns the app.
func (p devicePlatform) upload(t *testing.T, token, path string) app.App {
	t.Helper()
	status, body := apptest.Upload(t, p.base, token, path)
	var up struct{ App app.App }
	if err := json.Unmarshal(body, &up); status != http.StatusCreated || err != nil {
		t.Fatalf("upload = %d %s", status, body)
	}
	return up.App
}

// installed returns the device's apps as GET /devices/{id}/apps lists them.
func (p devicePlatform) installed(t *testing.T, token, id string) []device.Installation {
	t.Helper()
	var l device.InstallationList
	if s := call(t, "GET", p.base+"/api/v1/devices/"+id+"/apps", nil, &l, deviceBearer(token)...); s != http.StatusOK {
		t.Fatalf("GET apps of %s = %d", id, s)
	}
	return l.Apps
}

// awaitApp waits until the device lists pkg in state want (gone: want "").
func (p devicePlatform) awaitApp(t *testing.T, token, id, pkg string, want device.InstallState) device.Installation {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var got device.Installation
		for _, in := range p.installed(t, token, id) {
			if in.Package == pkg {
				got = in
			}
		}
		if got.State == want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("app %s on %s never became %q: %+v", pkg, id, want, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// phonePackages lists the packages of the phone at addr with `pm list
// packages` over ADB.
func phonePackages(t *testing.T, addr string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := adb.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Shell(ctx, "pm list packages")
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("pm list packages: %v exit %d %s", err, res.ExitCode, res.Stderr)
	}
	var out []string
	for _, l := range strings.Split(string(res.Stdout), "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), "package:"); ok {
			out = append(out, p)
		}
	}
	return out
}

// An app uploaded through the platform is installed on its owner's running
// stand-in phone end to end (device context → broker → device-runtime →
// download from S3, ADB push and pm install → cloudphone.app.installed →
// device context), once however often it is asked for; an APK whose stored
// bytes changed after the upload is refused with digest_mismatch; an
// uninstall removes it; another user's phone or app is 404 and a stopped
// phone 409.
func TestAppInstallOnARunningPhoneThroughThePublicAPI(t *testing.T) {
	t.Parallel()
	good := apptest.Build(t, apptest.Spec{Package: "org.example.installme", VersionCode: 3, VersionName: "3.0", Label: "Install me"})
	tampered := apptest.Build(t, apptest.Spec{Package: "org.example.tampered", VersionCode: 1, Label: "Tampered"})
	bobs := apptest.Build(t, apptest.Spec{Package: "org.example.bobs", VersionCode: 1, Label: "Bobs"})
	p, _ := startRuntimePlatform(t, map[string]string{"DEVICE_PORT_RANGE": "26100-26199"})
	aliceID, alice := p.deviceToken(t, "alice")
	_, bob := p.deviceToken(t, "bob")
	p.fund(t, aliceID, 100000)

	var d device.Device
	if s := call(t, "POST", p.base+"/api/v1/devices", map[string]any{"name": "pixel", "cpu_cores": 1, "memory_mb": 512},
		&d, deviceBearer(alice)...); s != http.StatusAccepted {
		t.Fatalf("create: %d", s)
	}
	d = p.awaitStateWithin(t, alice, d.ID, device.StateRunning, 60*time.Second)
	addr := "127.0.0.1:" + strconv.Itoa(d.ADBPort)
	appsURL := p.base + "/api/v1/devices/" + d.ID + "/apps"

	uploaded := time.Now()
	a := p.upload(t, alice, good)
	b := p.upload(t, bob, bobs)

	// Another user's phone, another user's app: 404, nothing recorded.
	if s := call(t, "POST", appsURL, map[string]string{"app_id": a.ID}, nil, deviceBearer(bob)...); s != http.StatusNotFound {
		t.Fatalf("bob installs on alice's phone = %d", s)
	}
	if s := call(t, "GET", appsURL, nil, nil, deviceBearer(bob)...); s != http.StatusNotFound {
		t.Fatalf("bob lists alice's phone's apps = %d", s)
	}
	if s := call(t, "POST", appsURL, map[string]string{"app_id": b.ID}, nil, deviceBearer(alice)...); s != http.StatusNotFound {
		t.Fatalf("alice installs bob's app = %d", s)
	}
	if s := call(t, "POST", appsURL, map[string]string{"app_id": "not-an-id"}, nil, deviceBearer(alice)...); s != http.StatusBadRequest {
		t.Fatalf("install of a malformed app id = %d", s)
	}
	if got := p.installed(t, alice, d.ID); len(got) != 0 {
		t.Fatalf("refused installs left %+v", got)
	}

	var in device.Installation
	if s := call(t, "POST", appsURL, map[string]string{"app_id": a.ID}, &in, deviceBearer(alice)...); s != http.StatusAccepted ||
		in.State != device.InstallInstalling || in.Package != "org.example.installme" || in.VersionCode != 3 {
		t.Fatalf("install = %d %+v", s, in)
	}
	in = p.awaitApp(t, alice, d.ID, "org.example.installme", device.InstallInstalled)
	t.Logf("upload → installed on the stand-in in %s", time.Since(uploaded).Round(time.Millisecond))
	if in.AppID != a.ID || in.VersionName != "3.0" || in.Label != "Install me" {
		t.Fatalf("installed %+v", in)
	}
	if pkgs := phonePackages(t, addr); !slices.Contains(pkgs, "org.example.installme") {
		t.Fatalf("the phone lists %v", pkgs)
	}

	// The same version again: answered as it is, no second command.
	if s := call(t, "POST", appsURL, map[string]string{"app_id": a.ID}, &in, deviceBearer(alice)...); s != http.StatusAccepted ||
		in.State != device.InstallInstalled {
		t.Fatalf("repeated install = %d %+v", s, in)
	}
	devDB := p.contextDB(t, device.Database)
	var installs int
	if err := devDB.QueryRow(context.Background(), `SELECT count(*) FROM runtime_commands WHERE op = 'install' AND device_id = $1`,
		d.ID).Scan(&installs); err != nil || installs != 1 {
		t.Fatalf("install commands device-runtime received = %d (%v), want 1", installs, err)
	}

	// The stored bytes change behind the platform's back (same size):
	// device-runtime refuses them.
	ta := p.upload(t, alice, tampered)
	var key string
	if err := p.contextDB(t, app.Database).QueryRow(context.Background(), `SELECT key FROM objects WHERE sha256 = $1`,
		ta.SHA256).Scan(&key); err != nil {
		t.Fatal(err)
	}
	corrupt, err := os.ReadFile(tampered)
	if err != nil {
		t.Fatal(err)
	}
	corrupt[len(corrupt)/2] ^= 0xff
	store, err := objectstore.New(objectstore.Config{Endpoint: mustEnv(t, "S3_ENDPOINT"),
		AccessKeyID: mustEnv(t, "S3_ACCESS_KEY_ID"), SecretAccessKey: mustEnv(t, "S3_SECRET_ACCESS_KEY"),
		Bucket: mustEnv(t, "S3_BUCKET"), Region: os.Getenv("S3_REGION")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(context.Background(), key, strings.NewReader(string(corrupt)), int64(len(corrupt))+1); err != nil {
		t.Fatal(err)
	}
	if s := call(t, "POST", appsURL, map[string]string{"app_id": ta.ID}, nil, deviceBearer(alice)...); s != http.StatusAccepted {
		t.Fatalf("install of the tampered app = %d", s)
	}
	failed := p.awaitApp(t, alice, d.ID, "org.example.tampered", device.InstallFailed)
	if failed.Reason != deviceevents.AppReasonDigestMismatch {
		t.Fatalf("tampered install failed with %q", failed.Reason)
	}
	if pkgs := phonePackages(t, addr); slices.Contains(pkgs, "org.example.tampered") {
		t.Fatalf("the tampered APK was installed: %v", pkgs)
	}

	// Uninstall: gone from the phone and from the list.
	if s := call(t, "DELETE", appsURL+"/org.example.installme", nil, nil, deviceBearer(bob)...); s != http.StatusNotFound {
		t.Fatalf("bob uninstalls from alice's phone = %d", s)
	}
	if s := call(t, "DELETE", appsURL+"/org.example.notthere", nil, nil, deviceBearer(alice)...); s != http.StatusNotFound {
		t.Fatalf("uninstall of a package the phone does not have = %d", s)
	}
	if s := call(t, "DELETE", appsURL+"/org.example.installme", nil, &in, deviceBearer(alice)...); s != http.StatusAccepted ||
		in.State != device.InstallUninstalling {
		t.Fatalf("uninstall = %d %+v", s, in)
	}
	p.awaitApp(t, alice, d.ID, "org.example.installme", "")
	if pkgs := phonePackages(t, addr); slices.Contains(pkgs, "org.example.installme") {
		t.Fatalf("the phone still lists the uninstalled package: %v", pkgs)
	}

	// A stopped phone: 409 for installs and uninstalls.
	if s := call(t, "POST", p.base+"/api/v1/devices/"+d.ID+"/stop", nil, nil, deviceBearer(alice)...); s != http.StatusAccepted {
		t.Fatalf("stop: %d", s)
	}
	p.awaitStateWithin(t, alice, d.ID, device.StateStopped, 30*time.Second)
	if s := call(t, "POST", appsURL, map[string]string{"app_id": a.ID}, nil, deviceBearer(alice)...); s != http.StatusConflict {
		t.Fatalf("install on a stopped phone = %d", s)
	}
	if s := call(t, "DELETE", appsURL+"/org.example.tampered", nil, nil, deviceBearer(alice)...); s != http.StatusConflict {
		t.Fatalf("uninstall on a stopped phone = %d", s)
	}
}
