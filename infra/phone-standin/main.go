// Command phone-standin is a STAND-IN for a redroid phone, for tests and local
// runs only: Android cannot run on the machines the platform is developed on,
// so this small static binary plays the part of a phone that the platform and
// its users touch over ADB. It is not Android and runs no apps.
//
// It listens on the ADB port (5555, or $STANDIN_ADDR) and speaks the ADB
// transport as adbd does (package functions/device/adb): Debian's adb sees
// it as a `device`. It serves
//
//   - shell: and shell,v2 (real exit codes), with a small built-in command
//     interpreter: getprop, pm install/uninstall/list packages/path, cmd
//     package (what `adb install` streams to), screencap -p, logcat,
//     input tap/swipe/text/keyevent, wm size/density, md5sum, sha1sum,
//     sha256sum, ls, cat, echo, rm, mkdir, sleep, sh -c, with ;, &&, ||, |
//     and redirections; an unknown command fails with 127, as sh does;
//   - exec: (the same commands, raw bytes, as `adb exec-out` uses);
//   - sync: (STAT, LIST, SEND, RECV: `adb push` and `adb pull`).
//
// Files live under $STANDIN_ROOT ("/" in its container), so a pushed file is
// in the container's file system. `screencap -p` draws a real PNG: the
// phone's name, resolution and the time, the typed text, the recent key
// events and a mark at each recent tap. `logcat` prints and follows the
// stand-in's own log (connections, installs, input, a heartbeat).
//
// "Installing" an APK reads its package from the binary (or plain-text)
// AndroidManifest.xml, refuses an APK without any signature (neither a v1
// signature in META-INF nor an APK Signing Block; the signature itself is
// not verified), keeps the APK at /data/app/<package>-1/base.apk and records
// the package in /data/system/packages.list in Android's format.
//
// Run as /system/bin/pm (the same binary, linked by name in the image) it is
// the package manager for `docker exec`: `pm install <apk>`, `pm uninstall
// <package>`, `pm list packages`.
//
// Environment: STANDIN_ADDR (":5555"), STANDIN_NAME (the phone's name, shown
// as ro.product.model; default the host name), STANDIN_ROOT ("/"),
// STANDIN_SCREEN ("720x1280"), STANDIN_DENSITY ("320"), STANDIN_ADB_SECURE
// ("1" requires ADB authentication, as ro.adb.secure=1: only hosts whose
// key is in /data/misc/adb/adb_keys get in; default "0", no authentication,
// as redroid runs).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	cfg, err := configFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "phone-standin:", err)
		os.Exit(2)
	}
	p := newPhone(cfg.name, cfg.root, cfg.width, cfg.height, cfg.density)
	if filepath.Base(os.Args[0]) == "pm" || (len(os.Args) > 1 && os.Args[1] == "pm") {
		args := os.Args[1:]
		if len(args) > 0 && args[0] == "pm" {
			args = args[1:]
		}
		os.Exit(cmdPm(p, context.Background(), append([]string{"pm"}, args...),
			stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr, cwd: "/"}))
	}
	os.Exit(serve(cfg, p))
}

type config struct {
	addr, name, root       string
	width, height, density int
	secure                 bool
}

func configFromEnv() (config, error) {
	c := config{addr: ":5555", root: "/", width: 720, height: 1280, density: 320}
	if v := os.Getenv("STANDIN_ADDR"); v != "" {
		c.addr = v
	}
	if v := os.Getenv("STANDIN_ROOT"); v != "" {
		c.root = v
	}
	c.name = os.Getenv("STANDIN_NAME")
	if c.name == "" {
		c.name, _ = os.Hostname()
	}
	if c.name == "" {
		c.name = "phone-standin"
	}
	if v := os.Getenv("STANDIN_SCREEN"); v != "" {
		w, h, ok := strings.Cut(v, "x")
		wi, err1 := strconv.Atoi(w)
		hi, err2 := strconv.Atoi(h)
		if !ok || err1 != nil || err2 != nil || wi < 64 || hi < 64 || wi > 4096 || hi > 4096 {
			return c, fmt.Errorf("STANDIN_SCREEN=%q: want WIDTHxHEIGHT, each 64 to 4096", v)
		}
		c.width, c.height = wi, hi
	}
	switch v := os.Getenv("STANDIN_ADB_SECURE"); v {
	case "", "0":
	case "1":
		c.secure = true
	default:
		return c, fmt.Errorf("STANDIN_ADB_SECURE=%q: want 0 or 1", v)
	}
	if v := os.Getenv("STANDIN_DENSITY"); v != "" {
		d, err := strconv.Atoi(v)
		if err != nil || d < 72 || d > 1000 {
			return c, fmt.Errorf("STANDIN_DENSITY=%q: want 72 to 1000", v)
		}
		c.density = d
	}
	return c, nil
}

func serve(cfg config, p *phone) int {
	for _, d := range []string{uploadDir, filepath.Dir(packagesList), appDir, "/sdcard"} {
		if err := os.MkdirAll(p.fs.host(d), 0o777); err != nil {
			fmt.Fprintln(os.Stderr, "phone-standin:", err)
			return 1
		}
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "phone-standin:", err)
		return 1
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	log.Info("phone stand-in (not Android) listening", "addr", ln.Addr().String(), "name", cfg.name,
		"screen", fmt.Sprintf("%dx%d", cfg.width, cfg.height))
	// As PID 1 the process gets no default signal handling: stop on
	// SIGTERM/SIGINT ourselves so that `docker stop` is immediate.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	p.log.add('I', "StandIn", "boot completed: %s, %dx%d", cfg.name, cfg.width, cfg.height)
	go heartbeat(ctx, p)
	d := p.device()
	d.Log = log
	if cfg.secure {
		d.Keys = p.trustedKeys
		p.props["ro.adb.secure"] = "1"
	}
	if err := d.Serve(ctx, &loggingListener{Listener: ln, p: p}); err != nil {
		log.Error("serve", "error", err.Error())
		return 1
	}
	return 0
}

func heartbeat(ctx context.Context, p *phone) {
	start := time.Now()
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.log.add('I', "StandIn", "up %s", time.Since(start).Round(time.Second))
		}
	}
}

// loggingListener notes each ADB connection in the phone's log.
type loggingListener struct {
	net.Listener
	p *phone
}

func (l *loggingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.p.log.add('I', "adbd", "connection from %s", c.RemoteAddr())
	}
	return c, err
}
