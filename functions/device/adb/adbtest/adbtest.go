// Package adbtest holds test fixtures around Debian's real adb tools: a
// private adb server per test, and real APKs built with aapt and signed
// with apksigner. Tests skip, saying which tool is missing, when the tools
// are not installed (apt-get install adb aapt apksigner
// android-framework-res openssl).
package adbtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ADB is where Debian installs the adb client and server.
const ADB = "/usr/bin/adb"

// FrameworkRes is the Android framework resources aapt links an APK against
// (Debian package android-framework-res).
const FrameworkRes = "/usr/share/android-framework-res/framework-res.apk"

// Server is a private adb server for one test: its own port and home
// directory, so tests never share state with each other or with a
// developer's adb. It is killed when the test ends.
type Server struct {
	t    testing.TB
	Port int
	home string
}

// NewServer starts a private adb server, or skips the test when adb is not
// installed.
func NewServer(t testing.TB) *Server {
	t.Helper()
	if _, err := os.Stat(ADB); err != nil {
		t.Skipf("this test needs Debian's adb at %s (apt-get install adb): %v", ADB, err)
	}
	s := &Server{t: t, Port: freePort(t), home: t.TempDir()}
	if out, err := s.Run(context.Background(), "start-server"); err != nil {
		t.Fatalf("adb start-server on port %d: %v\n%s", s.Port, err, out)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = s.Run(ctx, "kill-server")
	})
	return s
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// PublicKey returns the server's public key in adb's text form (its
// adbkey.pub, made when the server started), as a device's adb_keys holds
// it.
func (s *Server) PublicKey() string {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.home, ".android", "adbkey.pub"))
	if err != nil {
		s.t.Fatalf("the adb server's public key: %v", err)
	}
	return string(b)
}

// Command returns an adb command talking to this server.
func (s *Server) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, ADB, append([]string{"-P", strconv.Itoa(s.Port)}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+s.home, "ANDROID_SDK_HOME="+s.home, "ADB_SERVER_SOCKET=")
	return cmd
}

// Run runs adb with args against this server and returns its stdout; the
// error carries stderr.
func (s *Server) Run(ctx context.Context, args ...string) (string, error) {
	cmd := s.Command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("adb %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Connect runs `adb connect addr` and waits until the server lists addr in
// the state `device`; it fails the test otherwise, quoting `adb devices`.
func (s *Server) Connect(ctx context.Context, addr string) {
	s.t.Helper()
	out, err := s.Run(ctx, "connect", addr)
	if err != nil || !strings.Contains(out, "connected to") {
		s.t.Fatalf("adb connect %s: %q %v", addr, out, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		state, _ := s.Run(ctx, "-s", addr, "get-state")
		if strings.TrimSpace(state) == "device" {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			devices, _ := s.Run(context.Background(), "devices")
			s.t.Fatalf("adb never saw %s as a device (state %q); adb devices:\n%s", addr, strings.TrimSpace(state), devices)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// APK describes a built APK.
type APK struct {
	Path    string
	Package string
}

// signingKey makes a throwaway RSA key and self-signed certificate in dir
// with openssl (a JVM keytool would take seconds).
func signingKey(t testing.TB, dir string) (key, cert string) {
	t.Helper()
	pem, key, cert := filepath.Join(dir, "key.pem"), filepath.Join(dir, "key.pk8"), filepath.Join(dir, "cert.pem")
	for _, st := range [][]string{
		{"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", pem, "-out", cert,
			"-days", "3650", "-subj", "/CN=cloudphone test"},
		{"openssl", "pkcs8", "-topk8", "-nocrypt", "-inform", "PEM", "-outform", "DER", "-in", pem, "-out", key},
	} {
		if out, err := exec.Command(st[0], st[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("make a signing key: %s: %v\n%s", strings.Join(st, " "), err, out)
		}
	}
	return key, cert
}

// BuildAPK builds a real APK for package pkg with aapt against the
// framework resources (a manifest, a label string, resources.arsc) and,
// when signed, signs it with apksigner (v1 and v2 schemes) using a
// throwaway key. It skips the test when a tool is missing.
func BuildAPK(t testing.TB, pkg string, signed bool) APK {
	t.Helper()
	need := []string{"aapt", FrameworkRes}
	if signed {
		need = append(need, "apksigner", "openssl")
	}
	for _, n := range need {
		if strings.HasPrefix(n, "/") {
			if _, err := os.Stat(n); err != nil {
				t.Skipf("this test needs %s (apt-get install android-framework-res): %v", n, err)
			}
		} else if _, err := exec.LookPath(n); err != nil {
			t.Skipf("this test needs %s (apt-get install %s): %v", n, n, err)
		}
	}
	dir := t.TempDir()
	manifest := fmt.Sprintf(`<manifest xmlns:android="http://schemas.android.com/apk/res/android" package=%q android:versionCode="1" android:versionName="1.0">
  <uses-sdk android:minSdkVersion="21" android:targetSdkVersion="30"/>
  <application android:label="@string/app_name"/>
</manifest>
`, pkg)
	if err := os.MkdirAll(filepath.Join(dir, "res", "values"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"AndroidManifest.xml":    manifest,
		"res/values/strings.xml": `<resources><string name="app_name">Test app</string></resources>`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	unsigned := filepath.Join(dir, "unsigned.apk")
	if out, err := exec.Command("aapt", "package", "-f", "-M", filepath.Join(dir, "AndroidManifest.xml"),
		"-S", filepath.Join(dir, "res"), "-I", FrameworkRes, "-F", unsigned).CombinedOutput(); err != nil {
		t.Fatalf("aapt package: %v\n%s", err, out)
	}
	if !signed {
		return APK{Path: unsigned, Package: pkg}
	}
	key, cert := signingKey(t, dir)
	out := filepath.Join(dir, pkg+".apk")
	if b, err := exec.Command("apksigner", "sign", "--key", key, "--cert", cert, "--out", out, unsigned).CombinedOutput(); err != nil {
		t.Fatalf("apksigner sign: %v\n%s", err, b)
	}
	return APK{Path: out, Package: pkg}
}
