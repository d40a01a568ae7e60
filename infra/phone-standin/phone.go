package main

import (
	"bufio"
	"context"
	"crypto/rsa"
	"image"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudphone/cloudphone/functions/device/adb"
)

// features are what the stand-in announces in its banner: shell,v2 (real
// exit codes), cmd (adb install streams to `cmd package install`) and
// fixed_push_mkdir (sync: SEND creates missing directories).
var features = []string{"shell_v2", "cmd", "fixed_push_mkdir"}

// phone is the stand-in's state: its identity, files, packages, log and
// what was done to its screen.
type phone struct {
	name            string
	width, height   int
	density         int
	props           map[string]string
	fs              files
	pm              *packageManager
	log             *logBuffer
	mu              sync.Mutex
	text            string
	keys            []string
	taps            []image.Point
	maxKeys, maxTap int
}

func newPhone(name, root string, width, height, density int) *phone {
	fsys := files{root: root}
	p := &phone{
		name: name, width: width, height: height, density: density,
		fs: fsys, pm: &packageManager{fs: fsys}, log: newLogBuffer(2000),
		maxKeys: 12, maxTap: 16,
	}
	p.props = map[string]string{
		"ro.product.name":          "cloudphone_standin",
		"ro.product.model":         name,
		"ro.product.device":        "standin",
		"ro.product.manufacturer":  "cloudphone",
		"ro.product.brand":         "cloudphone",
		"ro.product.cpu.abi":       "x86_64",
		"ro.build.version.release": "11",
		"ro.build.version.sdk":     "30",
		"ro.build.type":            "userdebug",
		"ro.serialno":              name,
		"ro.adb.secure":            "0",
		"ro.cloudphone.standin":    "1",
		"sys.boot_completed":       "1",
		"ro.sf.lcd_density":        strconv.Itoa(density),
	}
	return p
}

// device is the ADB device side serving p.
func (p *phone) device() *adb.Device {
	return &adb.Device{
		Props: map[string]string{
			"ro.product.name":   p.props["ro.product.name"],
			"ro.product.model":  p.props["ro.product.model"],
			"ro.product.device": p.props["ro.product.device"],
		},
		Features: features,
		Handler:  adb.HandlerFunc(p.route),
	}
}

// adbKeysFile holds the host keys a secure phone trusts, one "BASE64 name"
// line each (what adbkey.pub holds), as on Android.
const adbKeysFile = "/data/misc/adb/adb_keys"

// trustedKeys reads adbKeysFile; lines that are not keys are skipped.
func (p *phone) trustedKeys() []*rsa.PublicKey {
	b, err := os.ReadFile(p.fs.host(adbKeysFile))
	if err != nil {
		return nil
	}
	var keys []*rsa.PublicKey
	for _, line := range strings.Split(string(b), "\n") {
		if k, err := adb.ParsePublicKey(line); err == nil {
			keys = append(keys, k)
		}
	}
	return keys
}

// route maps a service to its server: shell (v1 and v2), exec and sync.
func (p *phone) route(service string) func(context.Context, *adb.Stream) {
	if svc, ok := adb.ParseShellService(service); ok {
		return func(ctx context.Context, s *adb.Stream) { p.serveShell(ctx, s, svc) }
	}
	if cmd, ok := strings.CutPrefix(service, "exec:"); ok {
		return func(ctx context.Context, s *adb.Stream) { p.serveExec(ctx, s, cmd) }
	}
	if service == "sync:" {
		return func(_ context.Context, s *adb.Stream) {
			if err := adb.ServeSync(s, p.fs); err != nil {
				p.log.add('W', "adbd", "sync: %v", err)
			}
		}
	}
	p.log.add('W', "adbd", "refused service %q", service)
	return nil
}

// streamContext ends when ctx does or the host closes s.
func streamContext(ctx context.Context, s *adb.Stream) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-s.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (p *phone) serveExec(ctx context.Context, s *adb.Stream, cmd string) {
	ctx, cancel := streamContext(ctx, s)
	defer cancel()
	p.run(ctx, cmd, stdio{in: s, out: s, err: s, cwd: "/"})
}

func (p *phone) serveShell(ctx context.Context, s *adb.Stream, svc adb.ShellService) {
	ctx, cancel := streamContext(ctx, s)
	defer cancel()
	if !svc.V2 {
		sio := stdio{in: s, out: s, err: s, cwd: "/"}
		if svc.Command == "" {
			_ = p.interactive(ctx, sio, svc.PTY)
			return
		}
		p.run(ctx, svc.Command, sio)
		return
	}
	sc := adb.NewShellConn(s)
	pr, pw := io.Pipe()
	go func() {
		defer pw.Close()
		for {
			id, data, err := sc.ReadPacket()
			if err != nil {
				cancel()
				return
			}
			switch id {
			case adb.ShellStdin:
				if _, err := pw.Write(data); err != nil {
					return
				}
			case adb.ShellCloseStdin:
				return
			}
		}
	}()
	out, errw := sc.Writer(adb.ShellStdout), sc.Writer(adb.ShellStderr)
	if svc.PTY {
		errw = out // a terminal has one output
	}
	sio := stdio{in: pr, out: out, err: errw, cwd: "/"}
	code := 0
	if svc.Command == "" {
		code = p.interactive(ctx, sio, svc.PTY)
	} else {
		code = p.run(ctx, svc.Command, sio)
	}
	_ = pr.Close()
	_ = sc.WritePacket(adb.ShellExit, []byte{byte(code)})
}

// interactive reads command lines until exit or the end of input and
// returns the last status. On a terminal it prompts and echoes what is
// typed, as a tty does; without one it reads silently, as sh reading a
// script does.
func (p *phone) interactive(ctx context.Context, sio stdio, pty bool) int {
	prompt := p.props["ro.product.device"] + ":/ $ "
	in := bufio.NewReader(sio.in)
	status := 0
	for ctx.Err() == nil {
		if pty {
			_, _ = io.WriteString(sio.out, prompt)
		}
		line, err := readLine(in, sio.out, pty)
		if f := strings.Fields(line); len(f) > 0 && f[0] == "exit" {
			return p.run(ctx, line, sio)
		}
		if strings.TrimSpace(line) != "" {
			status = p.run(ctx, line, sio)
		}
		if err != nil {
			break
		}
	}
	return status
}

func readLine(in *bufio.Reader, echo io.Writer, pty bool) (string, error) {
	var b strings.Builder
	for {
		c, err := in.ReadByte()
		if err != nil {
			return b.String(), err
		}
		if c == '\r' || c == '\n' {
			if pty {
				_, _ = io.WriteString(echo, "\r\n")
			}
			return b.String(), nil
		}
		if pty {
			if c == 0x7f || c == 0x08 {
				if b.Len() > 0 {
					s := b.String()
					b.Reset()
					b.WriteString(s[:len(s)-1])
					_, _ = io.WriteString(echo, "\b \b")
				}
				continue
			}
			if c == 0x04 && b.Len() == 0 { // Ctrl-D
				return "exit", nil
			}
			_, _ = echo.Write([]byte{c})
		}
		b.WriteByte(c)
	}
}

func (p *phone) tap(pt image.Point) {
	p.mu.Lock()
	p.taps = append(p.taps, pt)
	if len(p.taps) > p.maxTap {
		p.taps = p.taps[len(p.taps)-p.maxTap:]
	}
	p.mu.Unlock()
	p.log.add('I', "InputDispatcher", "tap at %d,%d", pt.X, pt.Y)
}

func (p *phone) typeText(t string) {
	p.mu.Lock()
	p.text += t
	if r := []rune(p.text); len(r) > 600 {
		p.text = string(r[len(r)-600:])
	}
	p.mu.Unlock()
	p.log.add('I', "InputDispatcher", "text %q", t)
}

// key records a key event; DEL (67) removes the last typed character.
func (p *phone) key(k string) {
	p.mu.Lock()
	if k == "67" || k == "KEYCODE_DEL" {
		if r := []rune(p.text); len(r) > 0 {
			p.text = string(r[:len(r)-1])
		}
	}
	p.keys = append(p.keys, strings.TrimPrefix(k, "KEYCODE_"))
	if len(p.keys) > p.maxKeys {
		p.keys = p.keys[len(p.keys)-p.maxKeys:]
	}
	p.mu.Unlock()
	p.log.add('I', "InputDispatcher", "keyevent %s", k)
}

// screen is what a screenshot taken now shows.
func (p *phone) screen() screenState {
	n := 0
	if pkgs, err := p.pm.list(); err == nil {
		n = len(pkgs)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return screenState{
		Name: p.name, Width: p.width, Height: p.height, Density: p.density, Now: time.Now(),
		Text: p.text, Keys: append([]string(nil), p.keys...), Taps: append([]image.Point(nil), p.taps...),
		Packages: n,
	}
}
