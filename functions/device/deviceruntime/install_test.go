package deviceruntime_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device/adb"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/device/deviceruntime"
)

// standinAPK is an APK as the phone stand-in's package manager reads it: a
// zip with a plain-text manifest naming pkg and a v1 signature file (which
// the stand-in does not verify). Real APKs built with aapt are installed by
// the end-to-end tests; the device context cannot build them here.
func standinAPK(t *testing.T, pkg string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range map[string]string{
		"AndroidManifest.xml": `<manifest xmlns:android="http://schemas.android.com/apk/res/android" package="` + pkg + `"/>`,
		"META-INF/CERT.RSA":   "signature",
		"classes.dex":         string(bytes.Repeat([]byte("dex\n"), 4096)),
	} {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// runningPhone creates a device and waits until it runs; it returns its id
// and its ADB address.
func (b *bundle) runningPhone(name string) (id, addr string) {
	b.t.Helper()
	id = b.deviceID(name)
	cmd := b.createCommand(id)
	b.send(b.rt, command(b.t, deviceevents.EventCreateRequested, cmd))
	b.waitReports(id, deviceevents.EventRuntimeStarted, 1, 30*time.Second)
	return id, net.JoinHostPort("127.0.0.1", strconv.Itoa(cmd.ADBPort))
}

// appCommand is c as the device context sends it for device id.
func appCommand(id string, c deviceevents.AppCommand) deviceevents.AppCommand {
	c.SchemaVersion, c.DeviceID, c.UserID, c.AppID = 1, id, "user-"+id, "00000000-0000-4000-8000-0000000000a1"
	if c.VersionCode == 0 {
		c.VersionCode = 1
	}
	return c
}

// sendApp hands an app command to rt.
func (b *bundle) sendApp(rt *deviceruntime.Function, typ string, c deviceevents.AppCommand) {
	b.t.Helper()
	e, err := eventOf(typ, c)
	if err != nil {
		b.t.Fatal(err)
	}
	b.send(rt, e)
}

// installOf is the install command of apk, served at url.
func installOf(t *testing.T, id, pkg, url string, apk []byte) deviceevents.AppCommand {
	sum := sha256.Sum256(apk)
	return appCommand(id, deviceevents.AppCommand{
		Package: pkg, URL: url, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(apk))})
}

// waitFact waits for the device's n-th app fact of type typ.
func (b *bundle) waitFact(id, typ string, n int, within time.Duration) deviceevents.AppFact {
	b.t.Helper()
	e, _ := b.waitReports(id, typ, n, within)
	var f deviceevents.AppFact
	if err := e.DataAs(&f); err != nil {
		b.t.Fatal(err)
	}
	if e.Subject() != id || f.DeviceID != id || f.SchemaVersion != 1 || f.At.IsZero() {
		b.t.Fatalf("fact %s is not about device %s: subject %s, %+v", typ, id, e.Subject(), f)
	}
	return f
}

// packages lists the phone's packages over ADB.
func packages(t *testing.T, addr string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	phone, err := adb.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	pkgs, err := phone.Packages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func serveBytes(t *testing.T, body []byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestInstallDownloadsChecksAndInstallsOverADBAndUninstallRemovesIt(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	id, addr := b.runningPhone("install")
	apk := standinAPK(t, "org.example.runtime")
	srv := serveBytes(t, apk)

	b.sendApp(b.rt, deviceevents.EventAppInstallRequested, installOf(t, id, "org.example.runtime", srv.URL+"/app.apk", apk))
	f := b.waitFact(id, deviceevents.EventAppInstalled, 1, 30*time.Second)
	if f.Package != "org.example.runtime" || f.VersionCode != 1 || f.Reason != "" || f.UserID != "user-"+id {
		t.Fatalf("installed fact %+v", f)
	}
	if pkgs := packages(t, addr); !slices.Contains(pkgs, "org.example.runtime") {
		t.Fatalf("the phone lists %v", pkgs)
	}

	un := appCommand(id, deviceevents.AppCommand{Package: "org.example.runtime"})
	b.sendApp(b.rt, deviceevents.EventAppUninstallRequested, un)
	b.waitFact(id, deviceevents.EventAppUninstalled, 1, 30*time.Second)
	if pkgs := packages(t, addr); slices.Contains(pkgs, "org.example.runtime") {
		t.Fatalf("the phone still lists the package: %v", pkgs)
	}
	// Uninstalling what is not there is done already.
	b.sendApp(b.rt, deviceevents.EventAppUninstallRequested, un)
	b.waitFact(id, deviceevents.EventAppUninstalled, 2, 30*time.Second)
}

func TestInstallOfBytesThatAreNotTheUploadedOnesFailsWithDigestMismatch(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	id, addr := b.runningPhone("digest")
	apk := standinAPK(t, "org.example.digest")
	flipped := bytes.Clone(apk)
	flipped[len(flipped)/2] ^= 0xff
	longer := append(bytes.Clone(apk), 0)

	for i, served := range [][]byte{flipped, longer, apk[:len(apk)-1]} {
		srv := serveBytes(t, served)
		b.sendApp(b.rt, deviceevents.EventAppInstallRequested, installOf(t, id, "org.example.digest", srv.URL, apk))
		if f := b.waitFact(id, deviceevents.EventAppInstallFailed, i+1, 30*time.Second); f.Reason != deviceevents.AppReasonDigestMismatch {
			t.Fatalf("case %d: install failed with %q", i, f.Reason)
		}
	}
	if pkgs := packages(t, addr); slices.Contains(pkgs, "org.example.digest") {
		t.Fatalf("the phone installed bytes that are not the app's: %v", pkgs)
	}
}

func TestInstallOnAStoppedPhoneOrOfAGoneObjectFailsWithTheReason(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	id, _ := b.runningPhone("reasons")
	apk := standinAPK(t, "org.example.reasons")
	gone := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(gone.Close)
	b.sendApp(b.rt, deviceevents.EventAppInstallRequested, installOf(t, id, "org.example.reasons", gone.URL, apk))
	if f := b.waitFact(id, deviceevents.EventAppInstallFailed, 1, 30*time.Second); f.Reason != deviceevents.AppReasonDownloadFailed {
		t.Fatalf("install of a missing object failed with %q", f.Reason)
	}

	b.send(b.rt, command(t, deviceevents.EventStopRequested, deviceevents.Command{DeviceID: id}))
	b.waitReports(id, deviceevents.EventRuntimeStopped, 1, 30*time.Second)
	srv := serveBytes(t, apk)
	b.sendApp(b.rt, deviceevents.EventAppInstallRequested, installOf(t, id, "org.example.reasons", srv.URL, apk))
	if f := b.waitFact(id, deviceevents.EventAppInstallFailed, 2, 30*time.Second); f.Reason != deviceevents.AppReasonDeviceNotRunning {
		t.Fatalf("install on a stopped phone failed with %q", f.Reason)
	}
}

func TestHandleRefusesUnusableAppCommandsPermanently(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	apk := standinAPK(t, "org.example.bad")
	good := installOf(t, "dev-1", "org.example.bad", "http://127.0.0.1:1/app.apk", apk)
	for name, mutate := range map[string]func(*deviceevents.AppCommand){
		"package": func(c *deviceevents.AppCommand) { c.Package = "not a package" },
		"url":     func(c *deviceevents.AppCommand) { c.URL = "file:///etc/passwd" },
		"digest":  func(c *deviceevents.AppCommand) { c.SHA256 = "abc" },
		"size":    func(c *deviceevents.AppCommand) { c.Size = 0 },
		"too big": func(c *deviceevents.AppCommand) { c.Size = 1 << 40 },
		"device":  func(c *deviceevents.AppCommand) { c.DeviceID = "" },
		"no url":  func(c *deviceevents.AppCommand) { c.URL = "" },
	} {
		c := good
		mutate(&c)
		e, err := eventOf(deviceevents.EventAppInstallRequested, c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.rt.Handle(context.Background(), e); err == nil {
			t.Errorf("%s: an unusable install was queued", name)
		}
	}
	var n int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM runtime_commands`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d commands queued (%v)", n, err)
	}
}

// A runtime that stops in the middle of a download leaves the install
// queued; the next runtime downloads and installs it from the start and
// reports it installed once.
func TestInstallInterruptedByARuntimeRestartIsDoneByTheNextRuntime(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	id, addr := b.runningPhone("restart")
	apk := standinAPK(t, "org.example.restart")
	var requests atomic.Int32
	firstStarted := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(apk)))
		if requests.Add(1) == 1 {
			// Half the bytes, then nothing until the runtime hangs up.
			_, _ = w.Write(apk[:len(apk)/2])
			w.(http.Flusher).Flush()
			close(firstStarted)
			<-r.Context().Done()
			return
		}
		_, _ = w.Write(apk)
	}))
	t.Cleanup(srv.Close)

	b.sendApp(b.rt, deviceevents.EventAppInstallRequested, installOf(t, id, "org.example.restart", srv.URL, apk))
	select {
	case <-firstStarted:
	case <-time.After(30 * time.Second):
		t.Fatal("the runtime never started the download")
	}
	aborted, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.rt.Stop(aborted); err != nil {
		t.Fatal(err)
	}
	var status string
	if err := b.pool.QueryRow(context.Background(), `SELECT status FROM runtime_commands WHERE op = 'install'`).Scan(&status); err != nil || status != "pending" {
		t.Fatalf("the interrupted install is %q (%v), want pending", status, err)
	}
	if slices.Contains(packages(t, addr), "org.example.restart") {
		t.Fatal("installed before the download finished")
	}

	b.start()
	b.waitFact(id, deviceevents.EventAppInstalled, 1, 30*time.Second)
	if pkgs := packages(t, addr); !slices.Contains(pkgs, "org.example.restart") {
		t.Fatalf("the phone lists %v", pkgs)
	}
	if n := requests.Load(); n != 2 {
		t.Fatalf("%d downloads, want the interrupted one and one more", n)
	}
	time.Sleep(300 * time.Millisecond)
	var facts int
	for _, e := range b.reports(id) {
		if e.Type() == deviceevents.EventAppInstalled || e.Type() == deviceevents.EventAppInstallFailed {
			facts++
		}
	}
	if facts != 1 {
		t.Fatalf("%d install facts, want 1: %s", facts, b.describe(id))
	}
}
