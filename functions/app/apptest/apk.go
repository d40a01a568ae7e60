// Package apptest builds real APKs for tests with Debian's aapt, the Android
// framework resources (android-framework-res) and apksigner, and reads them
// back with `aapt dump badging`, an oracle independent of the platform's own
// manifest parser.
package apptest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FrameworkRes is the Android framework resource package aapt links against
// (Debian's android-framework-res).
const FrameworkRes = "/usr/share/android-framework-res/framework-res.apk"

// Spec describes an APK to build. Zero fields take the defaults written
// beside them.
type Spec struct {
	Package     string   // "com.example.hello"
	VersionCode int64    // 1
	VersionName string   // "1.0"
	MinSDK      int      // 24
	TargetSDK   int      // 33
	Permissions []string // none
	Label       string   // "Hello": the application label, a string resource
	// Activity is the launchable activity's class name relative to the
	// package (".Main"); "-" builds an app without one.
	Activity string
	// AssetBytes, when positive, adds assets/payload.bin of that many random
	// (incompressible) bytes, stored uncompressed: an APK of about that size.
	AssetBytes int64
	// Unsigned skips apksigner.
	Unsigned bool
}

func (s Spec) withDefaults() Spec {
	if s.Package == "" {
		s.Package = "com.example.hello"
	}
	if s.VersionCode == 0 {
		s.VersionCode = 1
	}
	if s.VersionName == "" {
		s.VersionName = "1.0"
	}
	if s.MinSDK == 0 {
		s.MinSDK = 24
	}
	if s.TargetSDK == 0 {
		s.TargetSDK = 33
	}
	if s.Label == "" {
		s.Label = "Hello"
	}
	if s.Activity == "" {
		s.Activity = ".Main"
	}
	return s
}

// Need fails t unless aapt, apksigner and the framework resources are
// installed (.ci/run installs them).
func Need(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"aapt", "apksigner"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("this test needs %s (Debian package %s): %v", bin, bin, err)
		}
	}
	if _, err := os.Stat(FrameworkRes); err != nil {
		t.Fatalf("this test needs the Android framework resources (Debian package android-framework-res): %v", err)
	}
}

// Build builds the APK spec describes in a temporary directory of t and
// returns its path. It is signed (v1–v3 schemes) with a throwaway RSA key
// unless spec.Unsigned.
func Build(t testing.TB, spec Spec) string {
	t.Helper()
	Need(t)
	path, err := BuildIn(t.TempDir(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// BuildIn is Build into dir, for callers without a testing.TB (benchmarks'
// set-up): it returns dir/app.apk.
func BuildIn(dir string, spec Spec) (string, error) {
	spec = spec.withDefaults()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "res", "values"), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "AndroidManifest.xml"), []byte(manifestXML(spec)), 0o644); err != nil {
		return "", err
	}
	strs := `<resources><string name="app_name">` + html.EscapeString(spec.Label) + `</string></resources>`
	if err := os.WriteFile(filepath.Join(src, "res", "values", "strings.xml"), []byte(strs), 0o644); err != nil {
		return "", err
	}
	args := []string{"package", "-f", "-M", filepath.Join(src, "AndroidManifest.xml"), "-S", filepath.Join(src, "res"),
		"-I", FrameworkRes}
	if spec.AssetBytes > 0 {
		assets := filepath.Join(src, "assets")
		if err := os.MkdirAll(assets, 0o755); err != nil {
			return "", err
		}
		if err := randomFile(filepath.Join(assets, "payload.bin"), spec.AssetBytes); err != nil {
			return "", err
		}
		args = append(args, "-A", assets, "-0", "bin")
	}
	unsigned := filepath.Join(dir, "unsigned.apk")
	if out, err := exec.Command("aapt", append(args, "-F", unsigned)...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("aapt package: %v\n%s", err, out)
	}
	final := filepath.Join(dir, "app.apk")
	if spec.Unsigned {
		return final, os.Rename(unsigned, final)
	}
	key, cert, err := throwawayKey(dir)
	if err != nil {
		return "", err
	}
	out, err := exec.Command("apksigner", "sign", "--key", key, "--cert", cert, "--out", final, unsigned).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("apksigner sign: %v\n%s", err, out)
	}
	_ = os.Remove(unsigned)
	return final, nil
}

func manifestXML(s Spec) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="utf-8"?>
<manifest xmlns:android="http://schemas.android.com/apk/res/android" package="%s"
    android:versionCode="%d" android:versionName="%s">
  <uses-sdk android:minSdkVersion="%d" android:targetSdkVersion="%d"/>
`, html.EscapeString(s.Package), s.VersionCode, html.EscapeString(s.VersionName), s.MinSDK, s.TargetSDK)
	for _, p := range s.Permissions {
		fmt.Fprintf(&b, "  <uses-permission android:name=\"%s\"/>\n", html.EscapeString(p))
	}
	b.WriteString(`  <application android:label="@string/app_name" android:hasCode="false">` + "\n")
	if s.Activity != "-" {
		fmt.Fprintf(&b, `    <activity android:name="%s" android:exported="true">
      <intent-filter>
        <action android:name="android.intent.action.MAIN"/>
        <category android:name="android.intent.category.LAUNCHER"/>
      </intent-filter>
    </activity>
`, html.EscapeString(s.Activity))
	}
	b.WriteString("  </application>\n</manifest>\n")
	return b.String()
}

// randomFile writes n random bytes to path.
func randomFile(path string, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, n); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// throwawayKey writes a fresh RSA key (PKCS#8 DER) and a self-signed
// certificate (PEM) for apksigner into dir.
func throwawayKey(dir string) (keyPath, certPath string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "cloudphone test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	pk8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	keyPath, certPath = filepath.Join(dir, "key.pk8"), filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(keyPath, pk8, 0o600); err != nil {
		return "", "", err
	}
	return keyPath, certPath, os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// Badging is what `aapt dump badging` says about an APK.
type Badging struct {
	Package            string
	VersionCode        int64
	VersionName        string
	MinSDK             int
	TargetSDK          int
	Permissions        []string
	LaunchableActivity string
	Label              string
}

var (
	reQuoted = regexp.MustCompile(`(\w+)='([^']*)'`)
)

// DumpBadging runs `aapt dump badging` on the APK at path and parses it.
func DumpBadging(t testing.TB, path string) Badging {
	t.Helper()
	out, err := exec.Command("aapt", "dump", "badging", path).Output()
	if err != nil {
		t.Fatalf("aapt dump badging %s: %v", path, err)
	}
	var b Badging
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		head, rest, _ := strings.Cut(line, ":")
		attrs := map[string]string{}
		for _, m := range reQuoted.FindAllStringSubmatch(rest, -1) {
			attrs[m[1]] = m[2]
		}
		unquoted := strings.Trim(strings.TrimSpace(rest), "'")
		switch head {
		case "package":
			b.Package, b.VersionName = attrs["name"], attrs["versionName"]
			b.VersionCode, _ = strconv.ParseInt(attrs["versionCode"], 10, 64)
		case "sdkVersion":
			b.MinSDK, _ = strconv.Atoi(unquoted)
		case "targetSdkVersion":
			b.TargetSDK, _ = strconv.Atoi(unquoted)
		case "uses-permission":
			b.Permissions = append(b.Permissions, attrs["name"])
		case "application-label":
			b.Label = unquoted
		case "launchable-activity":
			b.LaunchableActivity = attrs["name"]
		}
	}
	return b
}
