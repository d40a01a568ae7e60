// Command startup measures start-up times and prints them:
//
//   - the size of each per-function binary (bin/fn/<function>, which links
//     that function alone), of the bundle binary (bin/function, every
//     function) and of a bare Go HTTP server built in the same run;
//   - a single function, as its own binary (bin/fn/<function>) and as the
//     bundle binary with FUNCTION=…, from exec to its first 200 on
//     /health/liveness (process serving) and on /health/readiness (pools
//     open, migrations checked), against the bare server;
//   - the local platform (bin/cloudphone) from exec to its first 200 on
//     /health/readiness, with a fresh data folder (initdb included) and with
//     an existing one.
//
// It needs DATABASE_URL and REDIS_URL for the function runs (make bench gives
// them) and the binaries built by `make build`.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

func main() {
	runs := flag.Int("runs", 40, "start-ups per measurement")
	fn := flag.String("function", "user-profile", "function to start")
	bin := flag.String("bin", "bin", "folder with function, cloudphone, bare and fn/<function>")
	platformRuns := flag.Int("platform-runs", 3, "local platform start-ups per measurement (0: none)")
	flag.Parse()
	if err := run(*bin, *fn, *runs, *platformRuns); err != nil {
		fmt.Fprintln(os.Stderr, "startup:", err)
		os.Exit(1)
	}
}

func run(bin, fn string, runs, platformRuns int) error {
	seed := make([]byte, 32)
	_, _ = rand.Read(seed)
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	env := append(os.Environ(),
		"FUNCTION="+fn,
		"CLOUDPHONE_USER_TOKEN_KEY="+base64.StdEncoding.EncodeToString(seed),
		"CLOUDPHONE_USER_TOKEN_PUBLIC_KEY="+base64.StdEncoding.EncodeToString(pub),
		"CLOUDPHONE_DATABASE_PREFIX=bench_",
		"LOG_LEVEL=error",
	)
	if err := sizes(bin); err != nil {
		return err
	}
	own := filepath.Join(bin, "fn", fn)

	bare, err := measure(filepath.Join(bin, "bare"), env, runs, "/")
	if err != nil {
		return err
	}
	live, err := measure(own, env, runs, "/health/liveness")
	if err != nil {
		return err
	}
	ready, err := measure(own, env, runs, "/health/readiness")
	if err != nil {
		return err
	}
	bundleReady, err := measure(filepath.Join(bin, "function"), env, runs, "/health/readiness")
	if err != nil {
		return err
	}
	fmt.Printf("\nexec → first 200, %d runs each (command: make bench, or go run ./tests/bench/startup after make build)\n", runs)
	report("bare Go HTTP server", bare, nil)
	report("fn/"+fn+" /health/liveness", live, bare)
	report("fn/"+fn+" /health/readiness", ready, bare)
	report("function (bundle) /health/readiness", bundleReady, bare)

	if platformRuns == 0 {
		return nil
	}
	// The local platform, with its own Postgres and Redis.
	var penv []string
	for _, kv := range env {
		if !hasPrefix(kv, "DATABASE_URL=") && !hasPrefix(kv, "REDIS_URL=") && !hasPrefix(kv, "CLOUDPHONE_") {
			penv = append(penv, kv)
		}
	}
	var fresh, warm []time.Duration
	for range platformRuns {
		dir, err := os.MkdirTemp("", "cloudphone-bench-")
		if err != nil {
			return err
		}
		_ = os.Chmod(dir, 0o755)
		e := append(penv, "CLOUDPHONE_DATA_DIR="+dir, "CLOUDPHONE_ADMIN_PASSWORD=bench-password-1")
		d, err := startPlatform(filepath.Join(bin, "cloudphone"), e)
		if err != nil {
			return err
		}
		fresh = append(fresh, d)
		d, err = startPlatform(filepath.Join(bin, "cloudphone"), e)
		if err != nil {
			return err
		}
		warm = append(warm, d)
		_ = os.RemoveAll(dir)
	}
	fmt.Printf("\nlocal platform exec → /health/readiness 200, %d runs each\n", platformRuns)
	report("fresh data folder (initdb)", fresh, nil)
	report("existing data folder", warm, nil)
	return nil
}

// sizes prints the size of every per-function binary beside the bare
// server's and the bundle's.
func sizes(bin string) error {
	size := func(path string) (float64, error) {
		st, err := os.Stat(path)
		if err != nil {
			return 0, fmt.Errorf("%v (run make build first)", err)
		}
		return float64(st.Size()) / 1e6, nil
	}
	bare, err := size(filepath.Join(bin, "bare"))
	if err != nil {
		return err
	}
	fmt.Printf("binary sizes, -s -w (command: make build, then ls -l bin/bare bin/function bin/cloudphone bin/fn)\n")
	for _, b := range []string{"bare", "function", "cloudphone"} {
		mb, err := size(filepath.Join(bin, b))
		if err != nil {
			return err
		}
		fmt.Printf("  %-34s %6.1f MB   (%.1fx bare)\n", b, mb, mb/bare)
	}
	fns, err := os.ReadDir(filepath.Join(bin, "fn"))
	if err != nil {
		return fmt.Errorf("%v (run make build first)", err)
	}
	for _, f := range fns {
		mb, err := size(filepath.Join(bin, "fn", f.Name()))
		if err != nil {
			return err
		}
		fmt.Printf("  %-34s %6.1f MB   (%.1fx bare)\n", "fn/"+f.Name(), mb, mb/bare)
	}
	return nil
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

var client = &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// measure starts path runs times and times exec → first 200 on probe.
func measure(path string, env []string, runs int, probe string) ([]time.Duration, error) {
	var out []time.Duration
	for range runs {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(path)
		cmd.Env = append(env, "LISTEN_ADDRESS="+addr)
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		d, err := waitOK("http://"+addr+probe, start, 10*time.Second)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, d)
	}
	return out, nil
}

func startPlatform(path string, env []string) (time.Duration, error) {
	addr, err := freeAddr()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(path)
	cmd.Env = append(env, "CLOUDPHONE_ADDR="+addr)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	d, err := waitOK("http://"+addr+"/health/readiness", start, 60*time.Second)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
	}
	return d, err
}

func waitOK(url string, start time.Time, limit time.Duration) (time.Duration, error) {
	for time.Since(start) < limit {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
	return 0, fmt.Errorf("no 200 from %s within %v", url, limit)
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func report(name string, ds, base []time.Duration) {
	p50, p99 := pct(ds, 0.50), pct(ds, 0.99)
	line := fmt.Sprintf("  %-34s p50 %8.2f ms   p99 %8.2f ms", name, ms(p50), ms(p99))
	if base != nil {
		line += fmt.Sprintf("   (%.1fx the bare server's p50)", float64(p50)/float64(pct(base, 0.5)))
	}
	fmt.Println(line)
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
