// Package adbbench measures ADB straight to a phone stand-in (run as a
// process on loopback): push throughput of 50 MB with the platform's ADB
// Client and with Debian's adb, and the round trip of a shell command with
// each, reported as p50/p99.
//
//	go test -count=1 -run '^$' -bench . -benchtime 3x ./tests/bench/adb/
//
// The adb figures include what a user pays per command: starting the adb
// client process, which talks to the adb server, which talks to the phone.
package adbbench

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device/adb"
	"github.com/cloudphone/cloudphone/functions/device/adb/adbtest"
	"github.com/cloudphone/cloudphone/infra/phone-standin/standinproc"
)

const pushSize = 50 << 20

func payload(b *testing.B) []byte {
	b.Helper()
	data := make([]byte, pushSize)
	_, _ = rand.Read(data)
	return data
}

// BenchmarkPush50MB pushes 50 MB per iteration; MB/s is the throughput.
func BenchmarkPush50MB(b *testing.B) {
	data := payload(b)
	b.Run("client", func(b *testing.B) {
		p := standinproc.Start(b, "bench-push")
		ctx := context.Background()
		c, err := adb.Dial(ctx, p.Addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.SetBytes(pushSize)
		b.ResetTimer()
		for b.Loop() {
			if err := c.Push(ctx, bytes.NewReader(data), pushSize, "/data/local/tmp/bench.bin", 0o644); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("adb", func(b *testing.B) {
		s := adbtest.NewServer(b)
		p := standinproc.Start(b, "bench-push")
		ctx := context.Background()
		s.Connect(ctx, p.Addr)
		local := filepath.Join(b.TempDir(), "bench.bin")
		if err := os.WriteFile(local, data, 0o644); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(pushSize)
		b.ResetTimer()
		for b.Loop() {
			if out, err := s.Run(ctx, "-s", p.Addr, "push", local, "/data/local/tmp/bench.bin"); err != nil {
				b.Fatalf("%v\n%s", err, out)
			}
		}
	})
}

// BenchmarkShellRoundTrip runs `echo ok` per iteration and reports the
// p50 and p99 of the round trip in microseconds.
func BenchmarkShellRoundTrip(b *testing.B) {
	report := func(b *testing.B, lat []time.Duration) {
		slices.Sort(lat)
		if len(lat) == 0 {
			return
		}
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds()), "p99-µs")
	}
	b.Run("client", func(b *testing.B) {
		p := standinproc.Start(b, "bench-shell")
		ctx := context.Background()
		c, err := adb.Dial(ctx, p.Addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		var lat []time.Duration
		for b.Loop() {
			t0 := time.Now()
			res, err := c.Shell(ctx, "echo ok")
			if err != nil || res.ExitCode != 0 || string(res.Stdout) != "ok\n" {
				b.Fatalf("%+v %v", res, err)
			}
			lat = append(lat, time.Since(t0))
		}
		report(b, lat)
	})
	b.Run("adb", func(b *testing.B) {
		s := adbtest.NewServer(b)
		p := standinproc.Start(b, "bench-shell")
		ctx := context.Background()
		s.Connect(ctx, p.Addr)
		var lat []time.Duration
		for b.Loop() {
			t0 := time.Now()
			if out, err := s.Run(ctx, "-s", p.Addr, "shell", "echo", "ok"); err != nil || out != "ok\n" {
				b.Fatalf("%q %v", out, err)
			}
			lat = append(lat, time.Since(t0))
		}
		report(b, lat)
	})
}
