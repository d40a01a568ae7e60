package billing_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkHotBalanceDebit debits one balance from 16 goroutines: every
// debit locks the same row, so this is the serialized rate of one hot
// balance. Reports debits/s and the p50/p99 latency of one debit.
func BenchmarkHotBalanceDebit(b *testing.B) {
	e := setup(b)
	u := newUser()
	e.Credit(b, u, 1e11)
	const workers = 16
	var next atomic.Int64
	lat := make([][]time.Duration, workers)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := e.Service.DebitForTest(context.Background(), u, 1, "bench"); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(len(all))/elapsed.Seconds(), "debits/s")
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50_ms")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99_ms")
	}
}
