package deviceadbapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/adb"
	"github.com/cloudphone/cloudphone/functions/device/deviceadbapi"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/tests/devicetest"
)

var bg = context.Background()

// testPhone is an ADB device (the real protocol, from package adb) on a
// loopback port, standing in for an Android phone: its shell answers "ran:
// <command>" with exit code 3 and blocks on "sleep …", screencap draws a
// 32×16 PNG, logcat prints three lines and, unless -d, holds the stream
// open.
func testPhone(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	d := &adb.Device{Props: map[string]string{"ro.product.model": "test"}, Features: []string{"shell_v2"},
		Handler: adb.HandlerFunc(route)}
	done := make(chan struct{})
	go func() { _ = d.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().(*net.TCPAddr).Port
}

func route(service string) func(ctx context.Context, s *adb.Stream) {
	if sh, ok := adb.ParseShellService(service); ok && sh.V2 {
		return func(ctx context.Context, s *adb.Stream) {
			sc := adb.NewShellConn(s)
			if strings.HasPrefix(sh.Command, "sleep") {
				<-ctx.Done()
				return
			}
			_ = sc.WritePacket(adb.ShellStdout, []byte("ran: "+sh.Command))
			_ = sc.WritePacket(adb.ShellStderr, []byte("warning"))
			_ = sc.WritePacket(adb.ShellExit, []byte{3})
		}
	}
	cmd, ok := strings.CutPrefix(service, "exec:")
	switch {
	case ok && cmd == "screencap -p":
		return func(_ context.Context, s *adb.Stream) {
			img := image.NewRGBA(image.Rect(0, 0, 32, 16))
			img.Set(1, 1, color.RGBA{R: 255, A: 255})
			_ = png.Encode(s, img)
		}
	case ok && strings.HasPrefix(cmd, "logcat"):
		return func(ctx context.Context, s *adb.Stream) {
			for i := range 3 {
				fmt.Fprintf(s, "11-30 02:00:0%d.000 I/test( 1): line %d\n", i, i)
			}
			if !strings.Contains(cmd, "-d") {
				<-ctx.Done()
			}
		}
	}
	return nil
}

type setup struct {
	env   devicetest.Env
	srv   *httptest.Server
	alice devicetest.Account
	bob   devicetest.Account
	phone device.Device
}

func newSetup(t *testing.T, running bool) setup {
	t.Helper()
	port := testPhone(t)
	env := devicetest.New(t, devicetest.Ports(port, port))
	fn := deviceadbapi.New(env.Service, env.Users.Service.Verifier(), deviceadbapi.Config{}, logging.Discard())
	srv := httptest.NewServer(http.HandlerFunc(fn.Handle))
	t.Cleanup(srv.Close)
	s := setup{env: env, srv: srv, alice: env.User(t, "alice"), bob: env.User(t, "bob")}
	d, err := env.Service.Create(bg, s.alice.Principal, device.CreateRequest{Name: "phone", CPUCores: 1, MemoryMB: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if running {
		now := time.Now()
		env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeCreated, d.ID, now))
		env.Apply(t, devicetest.Report(t, deviceevents.EventRuntimeStarted, d.ID, now.Add(time.Millisecond)))
	}
	s.phone = d
	return s
}

func (s setup) do(t *testing.T, method, path, token, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, s.srv.URL+"/api/v1/devices/"+s.phone.ID+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func code(t *testing.T, resp *http.Response) apierr.Code {
	t.Helper()
	var b apierr.Body
	_ = json.NewDecoder(resp.Body).Decode(&b)
	return b.Error.Code
}

func TestShellAnswersOutputAndExitCode(t *testing.T) {
	t.Parallel()
	s := newSetup(t, true)
	resp := s.do(t, "POST", "/shell", s.alice.Token, `{"command":"getprop ro.product.model"}`)
	var out deviceadbapi.ShellResult
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("shell: %d %v", resp.StatusCode, err)
	}
	if out.Stdout != "ran: getprop ro.product.model" || out.Stderr != "warning" || out.ExitCode != 3 || out.TimedOut {
		t.Fatalf("shell result %+v", out)
	}
}

func TestShellThatOutlivesItsTimeoutIsAnsweredAsTimedOut(t *testing.T) {
	t.Parallel()
	s := newSetup(t, true)
	resp := s.do(t, "POST", "/shell", s.alice.Token, `{"command":"sleep 1000","timeout_s":1}`)
	var out deviceadbapi.ShellResult
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("shell: %d %v", resp.StatusCode, err)
	}
	if !out.TimedOut || out.ExitCode != -1 {
		t.Fatalf("shell result %+v, want timed out", out)
	}
}

func TestShellRefusesBadCommandsAndTimeouts(t *testing.T) {
	t.Parallel()
	s := newSetup(t, true)
	for name, body := range map[string]string{
		"empty":           `{"command":"  "}`,
		"too long":        `{"command":"` + strings.Repeat("a", deviceadbapi.CommandMax+1) + `"}`,
		"NUL":             `{"command":"ls\u0000"}`,
		"timeout too big": `{"command":"ls","timeout_s":301}`,
		"negative":        `{"command":"ls","timeout_s":-1}`,
		"unknown field":   `{"command":"ls","as_root":true}`,
	} {
		t.Run(name, func(t *testing.T) {
			resp := s.do(t, "POST", "/shell", s.alice.Token, body)
			if c := code(t, resp); resp.StatusCode != 400 || c != apierr.Invalid {
				t.Fatalf("%d %s", resp.StatusCode, c)
			}
		})
	}
}

func TestScreenshotIsAPNG(t *testing.T) {
	t.Parallel()
	s := newSetup(t, true)
	resp := s.do(t, "GET", "/screenshot", s.alice.Token, "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("screenshot: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	img, err := png.Decode(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 32 || b.Dy() != 16 {
		t.Fatalf("screenshot is %v", b)
	}
}

func TestLogsStreamAsServerSentEvents(t *testing.T) {
	t.Parallel()
	s := newSetup(t, true)
	resp := s.do(t, "GET", "/logs", s.alice.Token, "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("logs: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	var got []string
	for len(got) < 3 && sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			got = append(got, line)
		}
	}
	if len(got) != 3 || !strings.HasSuffix(got[2], "line 2") {
		t.Fatalf("events %q", got)
	}
	done := s.do(t, "GET", "/logs?follow=false", s.alice.Token, "")
	var all bytes.Buffer
	_, _ = all.ReadFrom(done.Body)
	if !strings.Contains(all.String(), "line 2\n\n") || !strings.HasSuffix(all.String(), "event: end\ndata: \n\n") {
		t.Fatalf("logs without follow: %q", all.String())
	}
}

func TestAnotherUsersPhoneIsNotFoundAndNoTokenIsUnauthorized(t *testing.T) {
	t.Parallel()
	s := newSetup(t, true)
	for _, c := range []struct {
		method, path, body string
	}{{"POST", "/shell", `{"command":"ls"}`}, {"GET", "/screenshot", ""}, {"GET", "/logs", ""}} {
		if resp := s.do(t, c.method, c.path, s.bob.Token, c.body); resp.StatusCode != 404 || code(t, resp) != apierr.NotFound {
			t.Errorf("bob %s %s: %d", c.method, c.path, resp.StatusCode)
		}
		if resp := s.do(t, c.method, c.path, "", c.body); resp.StatusCode != 401 {
			t.Errorf("anonymous %s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
}

func TestAPhoneThatIsNotRunningIsConflict(t *testing.T) {
	t.Parallel()
	s := newSetup(t, false)
	for _, c := range []struct {
		method, path, body string
	}{{"POST", "/shell", `{"command":"ls"}`}, {"GET", "/screenshot", ""}, {"GET", "/logs", ""}} {
		if resp := s.do(t, c.method, c.path, s.alice.Token, c.body); resp.StatusCode != 409 || code(t, resp) != apierr.Conflict {
			t.Errorf("%s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
}
