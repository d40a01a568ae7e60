package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/billing"
)

// BenchmarkBillingPurchase measures purchases end to end on the local
// platform, from POST /orders to the order being active (watched in billing's
// database): at 1 and 16 concurrent buyers, and at a fixed offered load of
// 200 purchases/s for 3 s. Reports purchases/s and p50/p99 in ms.
//
//	go test -run '^$' -bench BillingPurchase -benchtime 200x ./tests/e2e
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
	var seq atomic.Int64
	purchase := func(tok string) (time.Duration, bool) {
		t0 := time.Now()
		o, st := p.order(b, tok, "bench", fmt.Sprintf("bench-%d", seq.Add(1)))
		if st != http.StatusAccepted {
			return 0, false
		}
		for time.Since(t0) < 30*time.Second {
			var status string
			_ = p.db.QueryRow(b.Context(), `SELECT status FROM orders WHERE id = $1`, o.ID).Scan(&status)
			if status == billing.OrderActive {
				return time.Since(t0), true
			}
			if status == billing.OrderFailed {
				return 0, false
			}
			time.Sleep(time.Millisecond)
		}
		return 0, false
	}
	report := func(b *testing.B, lat []time.Duration, elapsed time.Duration) {
		slices.Sort(lat)
		if len(lat) == 0 {
			b.Fatal("no purchase completed")
		}
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "purchases/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
	}
	for _, buyers := range []int{1, 16} {
		b.Run(fmt.Sprintf("buyers=%d", buyers), func(b *testing.B) {
			var next atomic.Int64
			var mu sync.Mutex
			var lat []time.Duration
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
			report(b, lat, time.Since(start))
		})
	}
	b.Run("offered=200/s", func(b *testing.B) {
		const rate, seconds = 200, 3
		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
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
		report(b, lat, time.Since(start))
		b.ReportMetric(float64(len(lat)), "completed")
	})
}
