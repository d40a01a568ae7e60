package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/adb/adbtest"
)

var (
	cpctlOnce sync.Once
	cpctlPath string
	cpctlErr  error
)

// cpctlBinary builds bin/cpctl's source once per test process.
func cpctlBinary(t *testing.T) string {
	t.Helper()
	cpctlOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cpctl-e2e-")
		if err != nil {
			cpctlErr = err
			return
		}
		cpctlPath = filepath.Join(dir, "cpctl")
		out, err := exec.Command("go", "build", "-o", cpctlPath, "../../infra/cmd/cpctl").CombinedOutput()
		if err != nil {
			cpctlErr = fmt.Errorf("build cpctl: %v\n%s", err, out)
		}
	})
	if cpctlErr != nil {
		t.Fatal(cpctlErr)
	}
	return cpctlPath
}

// cli runs cpctl as one user, with a config directory of its own.
type cli struct {
	t      *testing.T
	bin    string
	config string
}

func newCLI(t *testing.T) cli {
	return cli{t: t, bin: cpctlBinary(t), config: t.TempDir()}
}

func (c cli) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+c.config, "CPCTL_CONFIG=")
	return cmd
}

// run runs cpctl with stdin and returns stdout and its exit code.
func (c cli) run(stdin string, args ...string) (string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := c.command(ctx, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	if err != nil {
		code = exitCode(err)
		c.t.Logf("cpctl %s: exit %d: %s", strings.Join(args, " "), code, strings.TrimSpace(stderr.String()))
	}
	return string(out), code
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// adbConnect starts `cpctl adb-connect phone` and returns the address its
// first line names; the tunnel stops when the test ends.
func (c cli) adbConnect(phone string) string {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := c.command(ctx, "adb-connect", phone)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cancel()
			<-done
		}
		cancel()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		c.t.Fatalf("adb-connect printed no line: %v", err)
	}
	m := regexp.MustCompile(`^adb connect (127\.0\.0\.1:\d+)\n$`).FindStringSubmatch(line)
	if m == nil {
		c.t.Fatalf("adb-connect's first line is %q", line)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return m[1]
}

func TestRealADBReachesAPhoneOnlyThroughTheGatewayWithCpctl(t *testing.T) {
	t.Parallel()
	p, _ := startRuntimePlatform(t, map[string]string{"DEVICE_PORT_RANGE": "26200-26299"})
	aliceID, aliceToken := p.deviceToken(t, "alice")
	_, bobToken := p.deviceToken(t, "bob")
	p.fund(t, aliceID, 100000)

	alice := newCLI(t)
	if out, code := alice.run("correct horse battery\n", "login", "--url", p.base, "--username", "alice", "--password-stdin"); code != 0 {
		t.Fatalf("login: %d %s", code, out)
	}
	cfgFile := filepath.Join(alice.config, "cpctl", "config.json")
	if st, err := os.Stat(cfgFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v", st, err)
	}
	if out, code := alice.run("", "plans"); code != 0 || !strings.Contains(out, "basic") {
		t.Fatalf("plans: %d %q", code, out)
	}
	if out, code := alice.run("", "buy", "basic", "--json"); code != 0 || !strings.Contains(out, `"status": "active"`) {
		t.Fatalf("buy basic: %d %q", code, out)
	}
	if out, code := alice.run("", "balance"); code != 0 || out != "990.10 USD\n" {
		t.Fatalf("balance after buying basic (9.90) from 1000.00: %d %q", code, out)
	}
	out, code := alice.run("", "phones", "create", "--name", "pixel", "--cpu", "1", "--memory-mb", "512", "--wait", "--timeout", "2m", "--json")
	var d device.Device
	if err := json.Unmarshal([]byte(out), &d); code != 0 || err != nil || d.State != device.StateRunning {
		t.Fatalf("phones create --wait: %d %q %v", code, out, err)
	}

	addr := alice.adbConnect("pixel")
	s := adbtest.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s.Connect(ctx, addr)

	model, err := s.Run(ctx, "-s", addr, "shell", "getprop", "ro.product.model")
	if err != nil || strings.TrimSpace(model) == "" {
		t.Fatalf("adb shell getprop: %q %v", model, err)
	}
	// The REST shell reaches the same phone.
	if out, code := alice.run("", "shell", "pixel", "--", "getprop", "ro.product.model"); code != 0 || out != model {
		t.Fatalf("cpctl shell: %d %q, adb said %q", code, out, model)
	}
	if _, code := alice.run("", "shell", d.ID, "--", "sh", "-c", "'exit 3'"); code != 3 {
		t.Fatalf("cpctl shell of a failing command exited %d, want 3", code)
	}

	local := filepath.Join(t.TempDir(), "big.bin")
	f, err := os.Create(local)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, 20<<20); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	digest := hex.EncodeToString(h.Sum(nil))
	if out, err := s.Run(ctx, "-s", addr, "push", local, "/sdcard/Download/big.bin"); err != nil {
		t.Fatalf("adb push: %v\n%s", err, out)
	}
	if out, err := s.Run(ctx, "-s", addr, "shell", "sha256sum", "/sdcard/Download/big.bin"); err != nil || out != digest+"  /sdcard/Download/big.bin\n" {
		t.Fatalf("sha256sum in the phone: %q %v, want %s", out, err, digest)
	}

	apk := adbtest.BuildAPK(t, "org.cloudphone.gateway", true)
	if out, err := s.Run(ctx, "-s", addr, "install", apk.Path); err != nil || !strings.Contains(out, "Success") {
		t.Fatalf("adb install: %q %v", out, err)
	}
	if out, err := s.Run(ctx, "-s", addr, "shell", "pm", "list", "packages"); err != nil || !strings.Contains(out, "package:"+apk.Package+"\n") {
		t.Fatalf("pm list packages: %q %v", out, err)
	}

	size, err := s.Run(ctx, "-s", addr, "shell", "wm", "size")
	if err != nil {
		t.Fatal(err)
	}
	var w, hgt int
	if _, err := fmt.Sscanf(strings.TrimSpace(size), "Physical size: %dx%d", &w, &hgt); err != nil {
		t.Fatalf("wm size %q: %v", size, err)
	}
	shot := filepath.Join(t.TempDir(), "shot.png")
	if _, code := alice.run("", "screenshot", "pixel", "-o", shot); code != 0 {
		t.Fatalf("screenshot: %d", code)
	}
	sf, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(sf)
	_ = sf.Close()
	if err != nil || img.Bounds().Dx() != w || img.Bounds().Dy() != hgt {
		t.Fatalf("screenshot: %v, want %dx%d", err, w, hgt)
	}
	if out, code := alice.run("", "logs", "pixel"); code != 0 || strings.Count(out, "\n") == 0 {
		t.Fatalf("logs: %d %q", code, out)
	}

	// Bob cannot reach alice's phone: not through cpctl, not with her
	// ticket, and a ticket works once.
	bob := newCLI(t)
	if _, code := bob.run("correct horse battery\n", "login", "--url", p.base, "--username", "bob", "--password-stdin"); code != 0 {
		t.Fatalf("bob login: %d", code)
	}
	if _, code := bob.run("", "adb-connect", d.ID); code != 4 {
		t.Fatalf("bob's adb-connect to alice's phone exited %d, want 4 (not found)", code)
	}
	if _, code := bob.run("", "shell", d.ID, "--", "id"); code != 4 {
		t.Fatalf("bob's shell on alice's phone exited %d, want 4 (not found)", code)
	}
	var aliceConn device.Connection
	if status := call(t, "GET", p.base+"/api/v1/devices/"+d.ID+"/connection", nil, &aliceConn, deviceBearer(aliceToken)...); status != 200 {
		t.Fatalf("connection: %d", status)
	}
	dial := func(url string, header http.Header) int {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: header})
		if err == nil {
			_ = c.Close(websocket.StatusNormalClosure, "")
			return http.StatusSwitchingProtocols
		}
		if resp == nil {
			t.Fatalf("dial %s: %v", url, err)
		}
		return resp.StatusCode
	}
	if status := dial(aliceConn.URL, http.Header{"Authorization": {"Bearer " + bobToken}}); status != http.StatusForbidden {
		t.Fatalf("alice's ticket with bob's token: %d, want 403", status)
	}
	if status := dial(aliceConn.URL, nil); status != http.StatusSwitchingProtocols {
		t.Fatalf("alice's ticket: %d, want 101", status)
	}
	if status := dial(aliceConn.URL, nil); status != http.StatusUnauthorized {
		t.Fatalf("alice's ticket again: %d, want 401", status)
	}
	forged := strings.Replace(aliceConn.URL, "ticket=", "ticket=x", 1)
	if status := dial(forged, nil); status != http.StatusUnauthorized {
		t.Fatalf("forged ticket: %d, want 401", status)
	}

	// An access token the platform refuses is refreshed once and saved.
	raw, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]string
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["access_token"] = "expired-or-revoked"
	raw, _ = json.Marshal(cfg)
	if err := os.WriteFile(cfgFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := alice.run("", "phones", "list"); code != 0 || !strings.Contains(out, d.ID) {
		t.Fatalf("phones list after a refused token: %d %q", code, out)
	}
	raw, _ = os.ReadFile(cfgFile)
	if strings.Contains(string(raw), "expired-or-revoked") {
		t.Fatal("the refreshed tokens were not saved")
	}

	// A stopped phone cannot be used; it can be waited for and deleted.
	if out, code := alice.run("", "phones", "stop", "pixel", "--wait", "--timeout", "2m"); code != 0 || !strings.Contains(out, "stopped") {
		t.Fatalf("phones stop --wait: %d %q", code, out)
	}
	if _, code := alice.run("", "shell", "pixel", "--", "id"); code != 5 {
		t.Fatalf("shell on a stopped phone exited %d, want 5 (conflict)", code)
	}
	if _, code := alice.run("", "adb-connect", "pixel"); code != 5 {
		t.Fatalf("adb-connect to a stopped phone exited %d, want 5 (conflict)", code)
	}
	if out, code := alice.run("", "phones", "delete", "pixel", "--wait", "--timeout", "2m"); code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("phones delete --wait: %d %q", code, out)
	}
	if _, code := alice.run("", "logout"); code != 0 {
		t.Fatalf("logout: %d", code)
	}
	if _, code := alice.run("", "phones", "list"); code != 3 {
		t.Fatalf("phones list after logout exited %d, want 3", code)
	}
}
