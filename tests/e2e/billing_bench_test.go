package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/functions/billing"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
)

// BenchmarkBillingPurchase measures purchases end to end on the local
// platform, from POST /orders to the order being active (watched in billing's
// database): at 1 and 16 concurrent buyers, and at a fixed offered load of
// 200 purchases/s for 3 s. Reports purchases/s, p50/p99 in ms and
// write_xacts/purchase: the transactions that wrote to any database of the
// server (transaction ids assigned, read-only ones excluded), every context
// and the broker together. baseline=pgbench first runs `pgbench -N` with 16
// clients for 5 s on a database of the same server and reports its tps and
// its commit latency; buyers=16 reports its purchases/s and p99 as ratios to
// them (of_pgbench_tps, p99_per_pgbench_commit).
//
//	go test -run '^$' -bench BillingPurchase -benchtime 100x ./tests/e2e
func BenchmarkBillingPurchase(b *testing.B) {
	p := startBilling(b, billingOptions{})
	plan := billing.PlanRequest{ID: "bench", Name: "Bench", Price: 1, Currency: "USD", PeriodDays: 1, Quota: billing.Quota{MaxDevices: 1}}
	if st := call(b, "POST", p.base+"/api/v1/admin/plans", plan, nil, billingBearer(p.admin)...); st != http.StatusCreated {
		b.Fatalf("create plan: %d", st)
	}
	tokens := make([]string, 16)
	for i := range tokens {
		_, tokens[i] = p.buyer(b, fmt.Sprintf("bench%d", i), 1e9)
	}
	var tps, commit float64 // the pgbench baseline
	b.Run("baseline=pgbench", func(b *testing.B) {
		tps, commit = pgbenchBaseline(b, 16, 5*time.Second)
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(tps, "tps")
		b.ReportMetric(commit, "commit_ms")
	})

	w := newOrderWatcher(p.db)
	defer w.stop()
	var seq atomic.Int64
	purchase := func(tok string) (time.Duration, bool) {
		t0 := time.Now()
		o, st := p.order(b, tok, "bench", fmt.Sprintf("bench-%d", seq.Add(1)))
		if st != http.StatusAccepted {
			return 0, false
		}
		select {
		case status := <-w.watch(o.ID):
			return time.Since(t0), status == billing.OrderActive
		case <-time.After(30 * time.Second):
			return 0, false
		}
	}
	report := func(b *testing.B, lat []time.Duration, elapsed time.Duration, xacts int64, cpu cpuUse) (rate, p99 float64) {
		slices.Sort(lat)
		if len(lat) == 0 {
			b.Fatal("no purchase completed")
		}
		rate = float64(len(lat)) / elapsed.Seconds()
		p99 = float64(lat[len(lat)*99/100].Microseconds()) / 1000
		b.ReportMetric(rate, "purchases/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
		b.ReportMetric(p99, "p99_ms")
		b.ReportMetric(float64(xacts)/float64(len(lat)), "write_xacts/purchase")
		b.ReportMetric(cpu.platform.Seconds()*1000/float64(len(lat)), "platform_cpu_ms/purchase")
		if cpu.postgres >= 0 {
			b.ReportMetric(cpu.postgres.Seconds()*1000/float64(len(lat)), "postgres_cpu_ms/purchase")
		}
		return rate, p99
	}
	for _, buyers := range []int{1, 16} {
		b.Run(fmt.Sprintf("buyers=%d", buyers), func(b *testing.B) {
			var next atomic.Int64
			var mu sync.Mutex
			var lat []time.Duration
			x0, c0 := writeXacts(b, p.db), cpuNow(b, p.db)
			start := time.Now()
			var wg sync.WaitGroup
			for w := range buyers {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if d, ok := purchase(tokens[w]); ok {
							mu.Lock()
							lat = append(lat, d)
							mu.Unlock()
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			rate, p99 := report(b, lat, elapsed, writeXacts(b, p.db)-x0, cpuNow(b, p.db).since(c0))
			if buyers == 16 && tps > 0 {
				b.ReportMetric(rate/tps, "of_pgbench_tps")
				b.ReportMetric(p99/commit, "p99_per_pgbench_commit")
			}
		})
	}
	b.Run("offered=200/s", func(b *testing.B) {
		const rate, seconds = 200, 3
		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		x0, c0 := writeXacts(b, p.db), cpuNow(b, p.db)
		start := time.Now()
		for i := range rate * seconds {
			<-tick.C
			wg.Go(func() {
				if d, ok := purchase(tokens[i%len(tokens)]); ok {
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		report(b, lat, time.Since(start), writeXacts(b, p.db)-x0, cpuNow(b, p.db).since(c0))
		b.ReportMetric(float64(len(lat)), "completed")
	})
}

// writeXacts returns the server's next transaction id less one: the
// difference of two calls is the number of transactions that wrote anything
// in between, on every database of the server (the call itself is one).
func writeXacts(b *testing.B, pool *pgxpool.Pool) int64 {
	b.Helper()
	var n int64
	if err := pool.QueryRow(b.Context(), `SELECT pg_current_xact_id()::text::bigint`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// cpuUse is CPU time used so far: by this process (the whole platform runs
// in it) and by the Postgres server (its postmaster and every backend, live
// or exited), or -1 for Postgres when the server is not on this machine.
// Per purchase, these tell where a purchase's cost lies even when other work
// on the machine makes rates move.
type cpuUse struct{ platform, postgres time.Duration }

func (c cpuUse) since(c0 cpuUse) cpuUse {
	d := cpuUse{platform: c.platform - c0.platform, postgres: -1}
	if c.postgres >= 0 && c0.postgres >= 0 {
		d.postgres = c.postgres - c0.postgres
	}
	return d
}

// cpuNow reads this process's CPU time from getrusage and the Postgres
// server's from /proc: the postmaster found through postmaster.pid in the
// server's data directory, its children's times and those of children it
// reaped.
func cpuNow(b *testing.B, pool *pgxpool.Pool) cpuUse {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	c := cpuUse{platform: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), postgres: -1}
	var dir string
	if err := pool.QueryRow(b.Context(), `SELECT current_setting('data_directory')`).Scan(&dir); err != nil {
		return c
	}
	pidFile, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return c // not readable from here: another machine or user
	}
	postmaster, _, _ := strings.Cut(string(pidFile), "\n")
	// ticks is a process's utime and stime (fields 14 and 15 of its stat
	// line), and with children also cutime and cstime (16 and 17).
	ticks := func(pid string, withChildren bool) (int64, bool) {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return 0, false
		}
		_, rest, _ := strings.Cut(string(stat), ") ") // the command may hold spaces
		f := strings.Fields(rest)                     // from field 3 on
		last := 12
		if withChildren {
			last = 14
		}
		var t int64
		for _, v := range f[11 : last+1] {
			n, _ := strconv.ParseInt(v, 10, 64)
			t += n
		}
		return t, true
	}
	total, ok := ticks(postmaster, true)
	if !ok {
		return c
	}
	children, _ := os.ReadFile("/proc/" + postmaster + "/task/" + postmaster + "/children")
	for _, pid := range strings.Fields(string(children)) {
		t, _ := ticks(pid, false)
		total += t
	}
	c.postgres = time.Duration(total) * time.Second / 100 // USER_HZ
	return c
}

// orderWatcher tells each waiting purchase when its order settled, with one
// query for all orders in flight every millisecond, so that watching does
// not load the server in proportion to the buyers.
type orderWatcher struct {
	mu      sync.Mutex
	waiting map[string]chan string
	done    chan struct{}
	stopped sync.WaitGroup
}

func newOrderWatcher(pool *pgxpool.Pool) *orderWatcher {
	w := &orderWatcher{waiting: map[string]chan string{}, done: make(chan struct{})}
	w.stopped.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-tick.C:
			}
			w.mu.Lock()
			ids := make([]string, 0, len(w.waiting))
			for id := range w.waiting {
				ids = append(ids, id)
			}
			w.mu.Unlock()
			if len(ids) == 0 {
				continue
			}
			rows, err := pool.Query(context.Background(), `SELECT id::text, status FROM orders
WHERE id = ANY($1::uuid[]) AND status IN ('`+billing.OrderActive+`', '`+billing.OrderFailed+`')`, ids)
			if err != nil {
				continue
			}
			for rows.Next() {
				var id, status string
				if rows.Scan(&id, &status) == nil {
					w.mu.Lock()
					if c, ok := w.waiting[id]; ok {
						c <- status
						delete(w.waiting, id)
					}
					w.mu.Unlock()
				}
			}
			rows.Close()
		}
	})
	return w
}

// watch returns a channel that receives the order's status once it is
// active or failed.
func (w *orderWatcher) watch(id string) <-chan string {
	c := make(chan string, 1)
	w.mu.Lock()
	w.waiting[id] = c
	w.mu.Unlock()
	return c
}

func (w *orderWatcher) stop() {
	close(w.done)
	w.stopped.Wait()
}

// pgbenchBaseline runs `pgbench -N` (TPC-B without the updates of the
// branch and teller rows) with clients clients for d on a fresh database of
// the $DATABASE_URL server, and returns its tps and its mean latency per
// transaction in ms. Without pgbench it skips.
func pgbenchBaseline(b *testing.B, clients int, d time.Duration) (tps, latencyMS float64) {
	b.Helper()
	bin, err := exec.LookPath("pgbench")
	if err != nil {
		found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
		if len(found) == 0 {
			b.Skip("no pgbench: install postgresql (its client tools) for the baseline")
		}
		bin = found[len(found)-1]
	}
	u, err := url.Parse(dbtest.BaseURL(b))
	if err != nil {
		b.Fatal(err)
	}
	u.Path = "/" + dbtest.Database(b).Config().ConnConfig.Database
	run := func(args ...string) string {
		cmd := exec.CommandContext(b.Context(), bin, append(args, u.String())...)
		cmd.Env = append(os.Environ(), "PGAPPNAME=pgbench")
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("pgbench %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("-i", "-q", "-s", "1")
	out := run("-N", "-n", "-c", strconv.Itoa(clients), "-j", "2", "-T", strconv.Itoa(int(d.Seconds())))
	parse := func(re string) float64 {
		m := regexp.MustCompile(re).FindStringSubmatch(out)
		if m == nil {
			b.Fatalf("pgbench output has no %s:\n%s", re, out)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	return parse(`tps = ([0-9.]+)`), parse(`latency average = ([0-9.]+) ms`)
}
