// Package gatewaybench measures the ADB gateway against a phone stand-in
// (run as a process on loopback) in one run: `adb push` of 50 MB through
// cpctl adb-connect and the gateway versus straight to the phone's port,
// the round trip of a shell command through the gateway versus direct
// (with the platform's ADB Client and with Debian's adb), and the gateway's
// memory per open session.
//
//	go run ./infra/cmd/devenv -- go test -count=1 -run '^$' -bench . -benchtime 3x ./tests/bench/gateway/
//
// The gateway and the devices function (for /connection) run in this
// process on a real HTTP server, over the device context on the real
// Postgres and Redis that DATABASE_URL and REDIS_URL name.
package gatewaybench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/cloudphone/cloudphone/functions/device"
	"github.com/cloudphone/cloudphone/functions/device/adb"
	"github.com/cloudphone/cloudphone/functions/device/adb/adbtest"
	"github.com/cloudphone/cloudphone/functions/device/deviceadbgateway"
	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/functions/device/devices"
	"github.com/cloudphone/cloudphone/infra/phone-standin/standinproc"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/tests/devicetest"
)

// bench is a running phone stand-in with the platform's device routes and
// gateway in front of it.
type bench struct {
	env     devicetest.Env
	gw      *deviceadbgateway.Function
	base    string // http://127.0.0.1:PORT
	phone   standinproc.Phone
	device  device.Device
	account devicetest.Account
}

func setup(b *testing.B) bench {
	b.Helper()
	ph := standinproc.Start(b, "bench-gateway")
	_, portStr, _ := net.SplitHostPort(ph.Addr)
	port, _ := strconv.Atoi(portStr)
	env := devicetest.New(b, devicetest.Ports(port, port))
	gw, err := deviceadbgateway.New(deviceadbgateway.Options{
		Devices: env.Service, Redis: env.Users.Redis, Verifier: env.Users.Service.Verifier(), Log: logging.Discard(),
		Config: deviceadbgateway.Config{MaxSessionsPerUser: 10000, WatchInterval: 2 * time.Second, DialTimeout: 5 * time.Second,
			RedisPrefix: fmt.Sprintf("bench:%d:", time.Now().UnixNano())},
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := gw.Start(context.Background(), nil); err != nil {
		b.Fatal(err)
	}
	dev := devices.New(env.Service, env.Users.Service.Verifier(), logging.Discard())
	mux := http.NewServeMux()
	mux.HandleFunc(deviceadbgateway.Route, gw.Handle)
	mux.HandleFunc("/", dev.Handle)
	srv := httptest.NewServer(mux)
	b.Cleanup(func() { srv.Close(); _ = gw.Stop(context.Background()) })
	a := env.User(b, "bench")
	d, err := env.Service.Create(context.Background(), a.Principal, device.CreateRequest{Name: "bench", CPUCores: 1, MemoryMB: 1024})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	env.Apply(b, devicetest.Report(b, deviceevents.EventRuntimeCreated, d.ID, now))
	env.Apply(b, devicetest.Report(b, deviceevents.EventRuntimeStarted, d.ID, now.Add(time.Millisecond)))
	return bench{env: env, gw: gw, base: srv.URL, phone: ph, device: d, account: a}
}

// cpctl builds cpctl, signs it in with the bench user's token and starts
// `cpctl adb-connect`; it returns the local address the tunnel listens on.
func (s bench) cpctl(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "cpctl")
	if out, err := exec.Command("go", "build", "-o", bin, "../../../infra/cmd/cpctl").CombinedOutput(); err != nil {
		b.Fatalf("build cpctl: %v\n%s", err, out)
	}
	cfg, _ := json.Marshal(map[string]string{"url": s.base, "username": "bench", "access_token": s.account.Token})
	cfgPath := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "adb-connect", s.device.ID, "--config", cfgPath)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait(); cancel() })
	line, err := bufio.NewReader(out).ReadString('\n')
	m := regexp.MustCompile(`^adb connect (\S+)\n$`).FindStringSubmatch(line)
	if err != nil || m == nil {
		b.Fatalf("cpctl adb-connect said %q (%v)", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return m[1]
}

// session opens a gateway session with a fresh ticket, as a net.Conn.
func (s bench) session(b *testing.B, ctx context.Context) net.Conn {
	b.Helper()
	c, err := s.env.Service.Connect(ctx, s.account.Principal, s.device.ID, "ws"+strings.TrimPrefix(s.base, "http"))
	if err != nil {
		b.Fatal(err)
	}
	ws, _, err := websocket.Dial(ctx, c.URL, nil)
	if err != nil {
		b.Fatal(err)
	}
	return websocket.NetConn(ctx, ws, websocket.MessageBinary)
}

// BenchmarkPush50MB pushes 50 MB per iteration with Debian's adb, straight
// to the phone's port, through the gateway, and through two plain TCP relays
// in user space (the same two hops as cpctl and the gateway, without
// WebSocket, tickets or accounting), in turn; it reports the throughput of
// each and their ratios to direct. ADB lets one WRTE per stream be in flight
// until the phone's OKAY, so every hop adds its latency to each block: the
// relays' ratio is what any user-space tunnel of two hops can reach here.
func BenchmarkPush50MB(b *testing.B) {
	s := setup(b)
	tunnel := s.cpctl(b)
	relays := relay(b, relay(b, s.phone.Addr))
	srv := adbtest.NewServer(b)
	ctx := context.Background()
	srv.Connect(ctx, s.phone.Addr)
	srv.Connect(ctx, tunnel)
	srv.Connect(ctx, relays)
	local := filepath.Join(b.TempDir(), "push.bin")
	data := make([]byte, 50<<20)
	_, _ = rand.Read(data)
	if err := os.WriteFile(local, data, 0o644); err != nil {
		b.Fatal(err)
	}
	push := func(addr string) time.Duration {
		t0 := time.Now()
		if out, err := srv.Run(ctx, "-s", addr, "push", local, "/data/local/tmp/bench.bin"); err != nil {
			b.Fatalf("push to %s: %v\n%s", addr, err, out)
		}
		return time.Since(t0)
	}
	var direct, gateway, relayed time.Duration
	b.ResetTimer()
	for b.Loop() {
		direct += push(s.phone.Addr)
		gateway += push(tunnel)
		relayed += push(relays)
	}
	b.StopTimer()
	mb := float64(len(data)) / (1 << 20) * float64(b.N)
	b.ReportMetric(mb/direct.Seconds(), "direct-MB/s")
	b.ReportMetric(mb/gateway.Seconds(), "gateway-MB/s")
	b.ReportMetric(direct.Seconds()/gateway.Seconds(), "gateway/direct")
	b.ReportMetric(direct.Seconds()/relayed.Seconds(), "two-tcp-relays/direct")
}

// relay listens on loopback and copies every connection to and from to,
// through a 64 KiB buffer in user space each way (not spliced in the kernel,
// as a tunnel that frames its bytes cannot be).
func relay(b *testing.B, to string) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	copyHalf := func(dst, src net.Conn) {
		_, _ = io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, 64<<10))
		_ = dst.Close()
		_ = src.Close()
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("tcp", to)
			if err != nil {
				_ = c.Close()
				continue
			}
			go copyHalf(d, c)
			go copyHalf(c, d)
		}
	}()
	return ln.Addr().String()
}

func percentiles(lat []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(lat)
	return lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
}

func reportAdded(b *testing.B, direct, gateway []time.Duration) {
	d50, d99 := percentiles(direct)
	g50, g99 := percentiles(gateway)
	b.ReportMetric(float64(d50.Microseconds()), "direct-p50-µs")
	b.ReportMetric(float64(d99.Microseconds()), "direct-p99-µs")
	b.ReportMetric(float64(g50.Microseconds()), "gateway-p50-µs")
	b.ReportMetric(float64(g99.Microseconds()), "gateway-p99-µs")
	b.ReportMetric(float64((g50 - d50).Microseconds()), "added-p50-µs")
	b.ReportMetric(float64((g99 - d99).Microseconds()), "added-p99-µs")
}

// BenchmarkShellRoundTrip runs `echo ok` per iteration straight to the
// phone and through the gateway, alternately, and reports p50/p99 of each
// and what the gateway adds: "client" with the platform's ADB Client on one
// connection each way, "adb" with Debian's adb (a process per command, via
// cpctl adb-connect).
func BenchmarkShellRoundTrip(b *testing.B) {
	b.Run("client", func(b *testing.B) {
		s := setup(b)
		ctx := context.Background()
		direct, err := adb.Dial(ctx, s.phone.Addr)
		if err != nil {
			b.Fatal(err)
		}
		defer direct.Close()
		through, err := adb.NewClient(ctx, s.session(b, ctx))
		if err != nil {
			b.Fatal(err)
		}
		defer through.Close()
		shell := func(c *adb.Client) time.Duration {
			t0 := time.Now()
			res, err := c.Shell(ctx, "echo ok")
			if err != nil || string(res.Stdout) != "ok\n" {
				b.Fatalf("%+v %v", res, err)
			}
			return time.Since(t0)
		}
		var d, g []time.Duration
		for b.Loop() {
			d = append(d, shell(direct))
			g = append(g, shell(through))
		}
		reportAdded(b, d, g)
	})
	b.Run("adb", func(b *testing.B) {
		s := setup(b)
		tunnel := s.cpctl(b)
		srv := adbtest.NewServer(b)
		ctx := context.Background()
		srv.Connect(ctx, s.phone.Addr)
		srv.Connect(ctx, tunnel)
		shell := func(addr string) time.Duration {
			t0 := time.Now()
			if out, err := srv.Run(ctx, "-s", addr, "shell", "echo", "ok"); err != nil || out != "ok\n" {
				b.Fatalf("%q %v", out, err)
			}
			return time.Since(t0)
		}
		var d, g []time.Duration
		for b.Loop() {
			d = append(d, shell(s.phone.Addr))
			g = append(g, shell(tunnel))
		}
		reportAdded(b, d, g)
	})
}

// sessionsPerRound is how many sessions BenchmarkSessionMemory opens.
const sessionsPerRound = 200

// BenchmarkSessionMemory opens sessionsPerRound gateway sessions, each an
// ADB connection that finished its handshake with the phone, and reports
// the gateway's heap and goroutine stacks per open session. The clients
// run in a child process, so only the gateway's side is counted.
func BenchmarkSessionMemory(b *testing.B) {
	s := setup(b)
	ctx := context.Background()
	for b.Loop() {
		urls := make([]string, sessionsPerRound)
		for i := range urls {
			c, err := s.env.Service.Connect(ctx, s.account.Principal, s.device.ID, "ws"+strings.TrimPrefix(s.base, "http"))
			if err != nil {
				b.Fatal(err)
			}
			urls[i] = c.URL
		}
		before := usage()
		child := exec.Command(os.Args[0], "-test.run", "^TestHoldSessions$", "-test.count=1")
		child.Env = append(os.Environ(), "GATEWAY_BENCH_HOLD=1")
		child.Stdin = strings.NewReader(strings.Join(urls, "\n") + "\n")
		out, err := child.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		child.Stderr = os.Stderr
		if err := child.Start(); err != nil {
			b.Fatal(err)
		}
		rd := bufio.NewReader(out)
		line, err := rd.ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "held" {
			b.Fatalf("the child said %q (%v)", line, err)
		}
		for s.gw.Sessions() < sessionsPerRound {
			time.Sleep(10 * time.Millisecond)
		}
		after := usage()
		_ = child.Process.Kill()
		_ = child.Wait()
		b.ReportMetric(float64(after.bytes-before.bytes)/sessionsPerRound, "bytes/session")
		b.ReportMetric(float64(after.goroutines-before.goroutines)/sessionsPerRound, "goroutines/session")
		for s.gw.Sessions() > 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

type memUsage struct {
	bytes      uint64
	goroutines int
}

func usage() memUsage {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memUsage{bytes: m.HeapInuse + m.StackInuse, goroutines: runtime.NumGoroutine()}
}

// TestHoldSessions is BenchmarkSessionMemory's child: it opens a session to
// every URL on stdin, finishes the ADB handshake on each, prints "held" and
// holds them until it is killed. It does nothing in an ordinary test run.
func TestHoldSessions(t *testing.T) {
	if os.Getenv("GATEWAY_BENCH_HOLD") != "1" {
		t.Skip("run by BenchmarkSessionMemory")
	}
	ctx := context.Background()
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	var held []*adb.Client
	for sc.Scan() {
		url := strings.TrimSpace(sc.Text())
		if url == "" {
			continue
		}
		ws, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := adb.NewClient(ctx, websocket.NetConn(ctx, ws, websocket.MessageBinary))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	fmt.Println("held")
	select {}
}
