package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device/adb"
	"github.com/cloudphone/cloudphone/functions/device/adb/adbtest"
)

// binary is the stand-in built once for the tests that run it as a process.
var standinBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "phone-standin-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	standinBin = filepath.Join(dir, "phone-standin")
	if out, err := exec.Command("go", "build", "-o", standinBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build the stand-in: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// standin is a running stand-in process.
type standin struct {
	addr string
	root string
	name string
}

// start runs the stand-in as a process on a free loopback port, its files
// under a scratch directory, and stops it when the test ends.
func start(t *testing.T, name string, env ...string) standin {
	t.Helper()
	root := t.TempDir()
	cmd := exec.Command(standinBin)
	cmd.Env = append(os.Environ(), append([]string{"STANDIN_ADDR=127.0.0.1:0", "STANDIN_ROOT=" + root, "STANDIN_NAME=" + name}, env...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := bufio.NewScanner(stderr)
	for lines.Scan() {
		var l struct{ Msg, Addr string }
		if json.Unmarshal(lines.Bytes(), &l) == nil && l.Addr != "" {
			go func() { _, _ = io.Copy(io.Discard, stderr) }()
			return standin{addr: l.Addr, root: root, name: name}
		}
	}
	t.Fatalf("the stand-in exited without listening: %v", lines.Err())
	return standin{}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// randomFile writes n random bytes under dir and returns its path and
// SHA-256.
func randomFile(t *testing.T, dir string, n int64) (string, string) {
	t.Helper()
	path := filepath.Join(dir, "random.bin")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, n); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, hex.EncodeToString(h.Sum(nil))
}

func exitCode(err error) int {
	if ee, ok := err.(interface{ ExitCode() int }); ok {
		return ee.ExitCode()
	}
	return -1
}

func TestRealADBSeesTheStandInAsADeviceAndGetsShellExitCodes(t *testing.T) {
	t.Parallel()
	s := adbtest.NewServer(t)
	p := start(t, "pixel-of-ada")
	c := ctx(t)
	s.Connect(c, p.addr)

	devices, err := s.Run(c, "devices", "-l")
	if err != nil || !strings.Contains(devices, p.addr+" ") || !strings.Contains(devices, " device ") || !strings.Contains(devices, "model:pixel_of_ada") {
		t.Fatalf("adb devices -l: %q %v", devices, err)
	}
	if out, err := s.Run(c, "-s", p.addr, "shell", "getprop", "ro.product.model"); err != nil || out != "pixel-of-ada\n" {
		t.Fatalf("getprop ro.product.model: %q %v", out, err)
	}
	// A shell without a command reads its commands from stdin.
	script := s.Command(c, "-s", p.addr, "shell")
	script.Stdin = strings.NewReader("getprop ro.product.model\nexit 5\necho never\n")
	if out, err := script.Output(); exitCode(err) != 5 || string(out) != "pixel-of-ada\n" {
		t.Fatalf("adb shell with a script on stdin: %q, %v; want exit 5", out, err)
	}
	if out, err := s.Run(c, "-s", p.addr, "logcat", "-d"); err != nil || !strings.Contains(out, "boot completed: pixel-of-ada") {
		t.Fatalf("adb logcat -d: %q %v", out, err)
	}
	for _, tc := range []struct {
		name, cmd  string
		code       int
		stdout     string
		stderrPart string
	}{
		{"exit status", "exit 3", 3, "", ""},
		{"unknown command", "frobnicate --now", 127, "", "frobnicate: inaccessible or not found"},
		{"and-or and a pipe", "false && echo no || echo yes | cat", 0, "yes\n", ""},
		{"stderr stays apart", "echo out; echo err >&2", 0, "out\n", "err"},
		{"wm size", "wm size", 0, "Physical size: 720x1280\n", ""},
	} {
		cmd := s.Command(c, "-s", p.addr, "shell", tc.cmd)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if code := exitCode(err); (err == nil && tc.code != 0) || (err != nil && code != tc.code) {
			t.Fatalf("%s: adb shell %q: exit %d (%v), want %d; stderr %q", tc.name, tc.cmd, code, err, tc.code, stderr.String())
		}
		if stdout.String() != tc.stdout || !strings.Contains(stderr.String(), tc.stderrPart) {
			t.Fatalf("%s: adb shell %q: stdout %q stderr %q", tc.name, tc.cmd, stdout.String(), stderr.String())
		}
	}
}

func TestRealADBPushes20MBAndThePhoneComputesTheSameDigest(t *testing.T) {
	t.Parallel()
	s := adbtest.NewServer(t)
	p := start(t, "push-phone")
	c := ctx(t)
	s.Connect(c, p.addr)
	local, digest := randomFile(t, t.TempDir(), 20<<20)

	if out, err := s.Run(c, "-s", p.addr, "push", local, "/sdcard/Download/big.bin"); err != nil {
		t.Fatalf("adb push: %v\n%s", err, out)
	}
	out, err := s.Run(c, "-s", p.addr, "shell", "sha256sum", "/sdcard/Download/big.bin")
	if err != nil || out != digest+"  /sdcard/Download/big.bin\n" {
		t.Fatalf("sha256sum in the phone: %q %v, want %s", out, err, digest)
	}
	if out, err := s.Run(c, "-s", p.addr, "shell", "ls", "-l", "/sdcard/Download"); err != nil || !strings.Contains(out, " 20971520 ") {
		t.Fatalf("ls -l: %q %v", out, err)
	}
	back := filepath.Join(t.TempDir(), "back.bin")
	if out, err := s.Run(c, "-s", p.addr, "pull", "/sdcard/Download/big.bin", back); err != nil {
		t.Fatalf("adb pull: %v\n%s", err, out)
	}
	b, err := os.ReadFile(back)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != digest {
		t.Fatal("the pulled file differs from the pushed one")
	}
}

func TestRealADBInstallsASignedAPKStreamedAndPushedAndRefusesAnUnsignedOne(t *testing.T) {
	t.Parallel()
	streamed := adbtest.BuildAPK(t, "org.cloudphone.streamed", true)
	pushed := adbtest.BuildAPK(t, "org.cloudphone.pushed", true)
	unsigned := adbtest.BuildAPK(t, "org.cloudphone.unsigned", false)
	s := adbtest.NewServer(t)
	p := start(t, "install-phone")
	c := ctx(t)
	s.Connect(c, p.addr)

	// adb 29 streams to `cmd package install -S SIZE` when the phone
	// offers "cmd"; --no-streaming pushes to /data/local/tmp and runs pm.
	if out, err := s.Run(c, "-s", p.addr, "install", streamed.Path); err != nil || !strings.Contains(out, "Success") {
		t.Fatalf("adb install: %q %v", out, err)
	}
	if out, err := s.Run(c, "-s", p.addr, "install", "--no-streaming", pushed.Path); err != nil || !strings.Contains(out, "Success") {
		t.Fatalf("adb install --no-streaming: %q %v", out, err)
	}
	out, err := s.Run(c, "-s", p.addr, "install", unsigned.Path)
	if err == nil || !strings.Contains(err.Error(), "INSTALL_PARSE_FAILED_NO_CERTIFICATES") {
		t.Fatalf("adb install of an unsigned APK: %q %v", out, err)
	}
	list, err := s.Run(c, "-s", p.addr, "shell", "pm", "list", "packages")
	if err != nil || list != "package:org.cloudphone.pushed\npackage:org.cloudphone.streamed\n" {
		t.Fatalf("pm list packages: %q %v", list, err)
	}
	if out, err := s.Run(c, "-s", p.addr, "uninstall", "org.cloudphone.pushed"); err != nil || !strings.Contains(out, "Success") {
		t.Fatalf("adb uninstall: %q %v", out, err)
	}
	if list, err := s.Run(c, "-s", p.addr, "shell", "pm", "list", "packages"); err != nil || list != "package:org.cloudphone.streamed\n" {
		t.Fatalf("pm list packages after uninstall: %q %v", list, err)
	}
}

func TestRealADBScreencapIsAPNGOfThePhonesResolutionThatShowsTaps(t *testing.T) {
	t.Parallel()
	s := adbtest.NewServer(t)
	p := start(t, "screen-phone", "STANDIN_SCREEN=480x800")
	c := ctx(t)
	s.Connect(c, p.addr)
	shot := func() image.Image {
		t.Helper()
		cmd := s.Command(c, "-s", p.addr, "exec-out", "screencap", "-p")
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("adb exec-out screencap -p: %v", err)
		}
		img, err := png.Decode(&out)
		if err != nil {
			t.Fatalf("the screenshot is not a PNG: %v", err)
		}
		return img
	}
	before := shot()
	if b := before.Bounds(); b.Dx() != 480 || b.Dy() != 800 {
		t.Fatalf("screenshot of %v, want 480x800", b)
	}
	const x, y = 300, 600
	if r, g, b, _ := before.At(x, y).RGBA(); r>>8 != uint32(colBackground.R) || g>>8 != uint32(colBackground.G) || b>>8 != uint32(colBackground.B) {
		t.Fatalf("the spot to tap is not background before the tap: %v", before.At(x, y))
	}
	if out, err := s.Run(c, "-s", p.addr, "shell", "input", "tap", "300", "600"); err != nil {
		t.Fatalf("input tap: %q %v", out, err)
	}
	after := shot()
	if r, g, b, _ := after.At(x, y).RGBA(); r>>8 != uint32(colLastTap.R) || g>>8 != uint32(colLastTap.G) || b>>8 != uint32(colLastTap.B) {
		t.Fatalf("after input tap %d %d the screenshot shows %v there, want the tap mark", x, y, after.At(x, y))
	}
}

// client dials the stand-in with the package's Client.
func client(t *testing.T, p standin) *adb.Client {
	t.Helper()
	cl, err := adb.Dial(ctx(t), p.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func TestClientShellReportsExitCodesAndKeepsStderrApart(t *testing.T) {
	t.Parallel()
	p := start(t, "client-shell")
	cl := client(t, p)
	if cl.Prop("ro.product.model") != "client-shell" || !cl.HasFeature("shell_v2") {
		t.Fatalf("banner %q", cl.Banner())
	}
	for _, tc := range []struct {
		cmd            string
		code           int
		stdout, stderr string
	}{
		{"getprop ro.product.model", 0, "client-shell\n", ""},
		{"exit 42", 42, "", ""},
		{"no-such-tool", 127, "", "/system/bin/sh: no-such-tool: inaccessible or not found\n"},
		{"echo visible; cat /missing", 1, "visible\n", "cat: /missing: No such file or directory\n"},
	} {
		res, err := cl.Shell(ctx(t), tc.cmd)
		if err != nil || res.ExitCode != tc.code || string(res.Stdout) != tc.stdout || string(res.Stderr) != tc.stderr {
			t.Fatalf("Shell(%q) = %d %q %q, %v; want %d %q %q", tc.cmd, res.ExitCode, res.Stdout, res.Stderr, err, tc.code, tc.stdout, tc.stderr)
		}
	}
	if _, err := cl.Open(ctx(t), "reboot:"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Open(reboot:) = %v, want a refusal", err)
	}
}

func TestClientPushPullRoundTripAndDigestInThePhone(t *testing.T) {
	t.Parallel()
	p := start(t, "client-files")
	cl := client(t, p)
	c := ctx(t)
	data := make([]byte, 3<<20+17)
	_, _ = rand.Read(data)
	sum := sha256.Sum256(data)
	if err := cl.Push(c, bytes.NewReader(data), int64(len(data)), "/data/local/tmp/deep/dir/f.bin", 0o640); err != nil {
		t.Fatal(err)
	}
	fi, err := cl.Stat(c, "/data/local/tmp/deep/dir/f.bin")
	if err != nil || fi.Size != int64(len(data)) || fi.Mode.Perm() != 0o640 || !fi.Mode.IsRegular() {
		t.Fatalf("Stat = %+v, %v", fi, err)
	}
	res, err := cl.Shell(c, "sha256sum /data/local/tmp/deep/dir/f.bin")
	if err != nil || string(res.Stdout) != hex.EncodeToString(sum[:])+"  /data/local/tmp/deep/dir/f.bin\n" {
		t.Fatalf("sha256sum: %q %v", res.Stdout, err)
	}
	var back bytes.Buffer
	if n, err := cl.Pull(c, "/data/local/tmp/deep/dir/f.bin", &back); err != nil || n != int64(len(data)) || !bytes.Equal(back.Bytes(), data) {
		t.Fatalf("Pull = %d, %v; same bytes %v", n, err, bytes.Equal(back.Bytes(), data))
	}
	entries, err := cl.List(c, "/data/local/tmp/deep/dir")
	if err != nil || len(entries) != 1 || entries[0].Name != "f.bin" {
		t.Fatalf("List = %+v, %v", entries, err)
	}

	// A reader shorter than the size given: the push fails and the phone
	// keeps nothing of it.
	err = cl.Push(c, bytes.NewReader(data[:1000]), 5000, "/data/local/tmp/short.bin", 0o644)
	if err == nil || !strings.Contains(err.Error(), "ended after 1000 of 5000 bytes") {
		t.Fatalf("short Push = %v", err)
	}
	if _, err := cl.Stat(c, "/data/local/tmp/short.bin"); !errorsIsNotExist(err) {
		t.Fatalf("Stat of the failed push = %v, want not exist", err)
	}
	// The phone drops the abandoned upload when it sees the stream close,
	// which may come just after the client returned.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		left, err := filepath.Glob(filepath.Join(p.root, "data", "local", "tmp", ".push-*"))
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a partial upload was left behind: %v", left)
		}
	}
	if _, err := cl.Pull(c, "/nowhere", io.Discard); err == nil || !strings.Contains(err.Error(), "No such file or directory") {
		t.Fatalf("Pull of a missing file = %v", err)
	}
}

func errorsIsNotExist(err error) bool {
	return err != nil && strings.Contains(err.Error(), "file does not exist")
}

func TestClientRunsManyStreamsAtOnceOnOneConnection(t *testing.T) {
	t.Parallel()
	p := start(t, "client-streams")
	cl := client(t, p)
	c := ctx(t)
	const n = 12
	errs := make(chan error, 2*n)
	// A logcat that follows stays open across all of it.
	logs, err := cl.Logcat(c)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	for i := range n {
		go func() {
			data := bytes.Repeat([]byte{byte(i)}, 1<<20+i)
			path := fmt.Sprintf("/sdcard/s%d.bin", i)
			if err := cl.Push(c, bytes.NewReader(data), int64(len(data)), path, 0o644); err != nil {
				errs <- err
				return
			}
			var back bytes.Buffer
			if _, err := cl.Pull(c, path, &back); err != nil || !bytes.Equal(back.Bytes(), data) {
				errs <- fmt.Errorf("stream %d: pull %v, same %v", i, err, bytes.Equal(back.Bytes(), data))
				return
			}
			errs <- nil
		}()
		go func() {
			res, err := cl.Shell(c, fmt.Sprintf("input text w%d; exit %d", i, i))
			if err == nil && res.ExitCode != i {
				err = fmt.Errorf("shell %d: exit %d", i, res.ExitCode)
			}
			errs <- err
		}()
	}
	for range 2 * n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Every typed text reached the log that was being followed.
	seen := map[string]bool{}
	sc := bufio.NewScanner(logs)
	for len(seen) < n && sc.Scan() {
		if _, rest, ok := strings.Cut(sc.Text(), `text "w`); ok {
			seen[strings.TrimSuffix(rest, `"`)] = true
		}
	}
	if len(seen) < n {
		t.Fatalf("logcat showed %d of %d texts: %v", len(seen), n, sc.Err())
	}
}

func TestClientInstallsASignedAPKAndReportsThePackageManagersReason(t *testing.T) {
	t.Parallel()
	good := adbtest.BuildAPK(t, "org.cloudphone.client", true)
	bad := adbtest.BuildAPK(t, "org.cloudphone.nosig", false)
	p := start(t, "client-install")
	cl := client(t, p)
	c := ctx(t)
	install := func(path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return cl.Install(c, bytes.NewReader(b), int64(len(b)))
	}
	if err := install(good.Path); err != nil {
		t.Fatal(err)
	}
	err := install(bad.Path)
	var ie *adb.InstallError
	if !asInstallError(err, &ie) || ie.Reason != "INSTALL_PARSE_FAILED_NO_CERTIFICATES" {
		t.Fatalf("Install of an unsigned APK = %v", err)
	}
	res, err := cl.Shell(c, "pm list packages; ls /data/local/tmp")
	if err != nil || string(res.Stdout) != "package:org.cloudphone.client\n" {
		t.Fatalf("after installs: %q %v (the pushed copies must be gone too)", res.Stdout, err)
	}
}

func asInstallError(err error, target **adb.InstallError) bool {
	ie, ok := err.(*adb.InstallError)
	if ok {
		*target = ie
	}
	return ok
}

func TestClientScreencapAndLogcatDump(t *testing.T) {
	t.Parallel()
	p := start(t, "client-screen")
	cl := client(t, p)
	c := ctx(t)
	if _, err := cl.Shell(c, "input keyevent KEYCODE_HOME"); err != nil {
		t.Fatal(err)
	}
	b, err := cl.Screencap(c)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil || img.Bounds().Dx() != 720 || img.Bounds().Dy() != 1280 {
		t.Fatalf("screencap: %v %v", err, img.Bounds())
	}
	logs, err := cl.Logcat(c, "-d")
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	all, err := io.ReadAll(logs)
	if err != nil || !strings.Contains(string(all), "keyevent KEYCODE_HOME") || !strings.Contains(string(all), "boot completed: client-screen") {
		t.Fatalf("logcat -d: %q %v", all, err)
	}
}

func TestRealADBAuthenticatesToASecureStandInOnlyWithATrustedKey(t *testing.T) {
	t.Parallel()
	s := adbtest.NewServer(t)
	trusting := start(t, "secure-phone", "STANDIN_ADB_SECURE=1")
	stranger := start(t, "stranger-phone", "STANDIN_ADB_SECURE=1")
	keys := filepath.Join(trusting.root, "data", "misc", "adb")
	if err := os.MkdirAll(keys, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keys, "adb_keys"), []byte(s.PublicKey()), 0o644); err != nil {
		t.Fatal(err)
	}
	c := ctx(t)
	s.Connect(c, trusting.addr)
	if out, err := s.Run(c, "-s", trusting.addr, "shell", "getprop", "ro.adb.secure"); err != nil || out != "1\n" {
		t.Fatalf("getprop ro.adb.secure: %q %v", out, err)
	}

	if out, err := s.Run(c, "connect", stranger.addr); err != nil {
		t.Fatalf("adb connect: %q %v", out, err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		devices, _ := s.Run(c, "devices")
		if strings.Contains(devices, stranger.addr+"\tunauthorized") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a phone that does not know adb's key is not listed unauthorized:\n%s", devices)
		}
	}
	if out, err := s.Run(c, "-s", stranger.addr, "shell", "echo", "in"); err == nil || strings.Contains(out, "in") {
		t.Fatalf("a shell on a phone that does not trust the key: %q %v", out, err)
	}
}
