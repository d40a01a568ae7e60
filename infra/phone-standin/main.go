// Command phone-standin is a STAND-IN for a redroid phone, for tests and local
// runs only: Android cannot run on the machines the platform is developed on,
// so this tiny static binary plays the two parts of a phone the platform
// touches. It is not Android and runs no apps.
//
// As the container's entrypoint (/system/bin/phone-standin) it listens on the
// ADB port (5555, or $STANDIN_ADDR) and answers:
//
//   - the ADB wire handshake: a client that opens with an ADB CNXN packet
//     (24-byte little-endian header, as adb and the device-runtime's health
//     check send) gets a CNXN packet back whose banner is
//     "device::ro.product.name=cloudphone_standin;ro.product.model=phone-standin;";
//     that is all of ADB it speaks, after which it closes the connection;
//   - a one-line text protocol otherwise, one request per line, one reply
//     line each, "OKAY <text>" or "FAIL <reason>":
//     host:version                → OKAY 0029 (the adb protocol version, hex)
//     getprop sys.boot_completed  → OKAY 1
//     getprop ro.product.model    → OKAY phone-standin
//     install <path>              → OKAY Success <package> (path under /data/local/tmp)
//     uninstall <package>         → OKAY Success
//     pm list packages            → OKAY package:<a> package:<b> …
//     quit                        → closes the connection.
//
// Run as /system/bin/pm (the same binary, linked by name in the image) it is a
// package-manager stand-in for `docker exec`: `pm install <apk>`,
// `pm uninstall <package>`, `pm list packages`, printing what Android's pm
// prints ("Success", "package:<name>" lines) and exiting non-zero on failure.
//
// "Installing" an APK records its package in /data/system/packages.list, one
// line per package in Android's format "<package> <uid> 0 /data/user/0/<package>
// default none". The package name is the package attribute of a plain-text
// AndroidManifest.xml inside the APK (a zip), or else the file name without
// its .apk suffix; a file that is not a zip is refused, as pm would.
package main

import (
	"archive/zip"
	"bufio"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Paths inside the image, as on Android.
const (
	uploadDir    = "/data/local/tmp"
	packagesList = "/data/system/packages.list"
	banner       = "device::ro.product.name=cloudphone_standin;ro.product.model=phone-standin;ro.cloudphone.standin=1;"
)

func main() {
	if filepath.Base(os.Args[0]) == "pm" || (len(os.Args) > 1 && os.Args[1] == "pm") {
		args := os.Args[1:]
		if len(args) > 0 && args[0] == "pm" {
			args = args[1:]
		}
		os.Exit(pmMain(args, os.Stdout, os.Stderr))
	}
	addr := os.Getenv("STANDIN_ADDR")
	if addr == "" {
		addr = ":5555"
	}
	for _, d := range []string{uploadDir, filepath.Dir(packagesList)} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			fmt.Fprintln(os.Stderr, "phone-standin:", err)
			os.Exit(1)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "phone-standin:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "phone-standin (a stand-in, not Android) listening on %s\n", ln.Addr())
	// As PID 1 the process gets no default signal handling: exit on
	// SIGTERM/SIGINT ourselves so that `docker stop` is immediate.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		os.Exit(0)
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "phone-standin: accept:", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go serve(c)
	}
}

// ADB wire constants (system/core/adb/protocol.txt).
const (
	adbCNXN    = 0x4e584e43
	adbVersion = 0x01000000
	adbMaxData = 256 * 1024
)

func serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
	r := bufio.NewReader(c)
	head, err := r.Peek(4)
	if err != nil {
		return
	}
	if binary.LittleEndian.Uint32(head) == adbCNXN {
		serveADB(c, r)
		return
	}
	for {
		line, err := r.ReadString('\n')
		line = strings.TrimSpace(line)
		if line != "" {
			if line == "quit" {
				return
			}
			fmt.Fprintln(c, answer(line))
		}
		if err != nil {
			return
		}
	}
}

// serveADB reads the client's CNXN packet and answers with the device's.
func serveADB(c net.Conn, r *bufio.Reader) {
	var h [24]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return
	}
	if n := binary.LittleEndian.Uint32(h[12:]); n > 0 && n <= adbMaxData {
		if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
			return
		}
	}
	_, _ = c.Write(adbPacket(adbCNXN, adbVersion, adbMaxData, []byte(banner)))
}

func adbPacket(cmd, arg0, arg1 uint32, data []byte) []byte {
	var sum uint32
	for _, b := range data {
		sum += uint32(b)
	}
	p := make([]byte, 24+len(data))
	binary.LittleEndian.PutUint32(p[0:], cmd)
	binary.LittleEndian.PutUint32(p[4:], arg0)
	binary.LittleEndian.PutUint32(p[8:], arg1)
	binary.LittleEndian.PutUint32(p[12:], uint32(len(data)))
	binary.LittleEndian.PutUint32(p[16:], sum)
	binary.LittleEndian.PutUint32(p[20:], cmd^0xffffffff)
	copy(p[24:], data)
	return p
}

// answer serves one request of the text protocol.
func answer(line string) string {
	f := strings.Fields(line)
	switch {
	case line == "host:version":
		return "OKAY 0029"
	case len(f) == 2 && f[0] == "getprop":
		switch f[1] {
		case "sys.boot_completed":
			return "OKAY 1"
		case "ro.product.model":
			return "OKAY phone-standin"
		}
		return "OKAY "
	case len(f) == 2 && f[0] == "install":
		pkg, err := install(f[1])
		if err != nil {
			return "FAIL " + err.Error()
		}
		return "OKAY Success " + pkg
	case len(f) == 2 && f[0] == "uninstall":
		if err := uninstall(f[1]); err != nil {
			return "FAIL " + err.Error()
		}
		return "OKAY Success"
	case line == "pm list packages":
		pkgs, err := packages()
		if err != nil {
			return "FAIL " + err.Error()
		}
		out := make([]string, len(pkgs))
		for i, p := range pkgs {
			out[i] = "package:" + p
		}
		return strings.TrimSpace("OKAY " + strings.Join(out, " "))
	}
	return "FAIL unknown request: " + line
}

// pmMain is the pm stand-in: pm install <apk> | pm uninstall <pkg> | pm list packages.
func pmMain(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) >= 2 && args[0] == "install":
		if _, err := install(args[len(args)-1]); err != nil {
			fmt.Fprintf(stderr, "Failure [%v]\n", err)
			return 1
		}
		fmt.Fprintln(stdout, "Success")
		return 0
	case len(args) == 2 && args[0] == "uninstall":
		if err := uninstall(args[1]); err != nil {
			fmt.Fprintf(stderr, "Failure [%v]\n", err)
			return 1
		}
		fmt.Fprintln(stdout, "Success")
		return 0
	case len(args) == 2 && args[0] == "list" && args[1] == "packages":
		pkgs, err := packages()
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		for _, p := range pkgs {
			fmt.Fprintf(stdout, "package:%s\n", p)
		}
		return 0
	}
	fmt.Fprintln(stderr, "usage (phone stand-in): pm install <apk> | pm uninstall <package> | pm list packages")
	return 2
}

var (
	listMu     sync.Mutex
	validPkg   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$`)
	errNotAPK  = errors.New("INSTALL_PARSE_FAILED_NOT_APK")
	errBadName = errors.New("INSTALL_PARSE_FAILED_BAD_PACKAGE_NAME")
)

// install records the package of the APK at path and returns its name.
func install(path string) (string, error) {
	clean := filepath.Clean(path)
	if !strings.HasPrefix(clean, uploadDir+"/") {
		return "", fmt.Errorf("INSTALL_FAILED_INVALID_URI: %s is not under %s", path, uploadDir)
	}
	pkg, err := packageOf(clean)
	if err != nil {
		return "", err
	}
	listMu.Lock()
	defer listMu.Unlock()
	pkgs, err := readList()
	if err != nil {
		return "", err
	}
	if _, ok := pkgs[pkg]; !ok {
		pkgs[pkg] = fmt.Sprintf("%s %d 0 /data/user/0/%s default none", pkg, 10000+len(pkgs), pkg)
	}
	return pkg, writeList(pkgs)
}

func uninstall(pkg string) error {
	listMu.Lock()
	defer listMu.Unlock()
	pkgs, err := readList()
	if err != nil {
		return err
	}
	if _, ok := pkgs[pkg]; !ok {
		return errors.New("DELETE_FAILED_INTERNAL_ERROR")
	}
	delete(pkgs, pkg)
	return writeList(pkgs)
}

func packages() ([]string, error) {
	listMu.Lock()
	defer listMu.Unlock()
	pkgs, err := readList()
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(pkgs))
	for p := range pkgs {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// packageOf reads the package name of the APK at path.
func packageOf(path string) (string, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("INSTALL_FAILED_INVALID_URI: %s does not exist", path)
		}
		return "", errNotAPK
	}
	defer zr.Close()
	pkg := strings.TrimSuffix(filepath.Base(path), ".apk")
	for _, f := range zr.File {
		if f.Name != "AndroidManifest.xml" {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return "", errNotAPK
		}
		var m struct {
			Package string `xml:"package,attr"`
		}
		// A binary (compiled) manifest does not decode as text XML; the
		// file name then names the package.
		if xml.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&m) == nil && m.Package != "" {
			pkg = m.Package
		}
		rc.Close()
	}
	if !validPkg.MatchString(pkg) {
		return "", errBadName
	}
	return pkg, nil
}

func readList() (map[string]string, error) {
	out := map[string]string{}
	b, err := os.ReadFile(packagesList)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			out[f[0]] = line
		}
	}
	return out, nil
}

func writeList(pkgs map[string]string) error {
	lines := make([]string, 0, len(pkgs))
	for _, l := range pkgs {
		lines = append(lines, l)
	}
	sort.Strings(lines)
	if err := os.MkdirAll(filepath.Dir(packagesList), 0o777); err != nil {
		return err
	}
	tmp := packagesList + ".tmp"
	data := strings.Join(lines, "\n")
	if data != "" {
		data += "\n"
	}
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, packagesList)
}
