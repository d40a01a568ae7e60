package outbox_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/shared/db/dbtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/outbox"
)

// benchDuration is how long each sub-benchmark offers events.
const benchDuration = 3 * time.Second

// BenchmarkRelayLag offers events at a fixed rate, each added in its own
// committed transaction, to one relay with default options, and measures the
// lag from the start of each commit to the Sender accepting the event:
// p50_ms, p99_ms and max_ms, plus events/s end to end (events over the time
// from the first commit to the last send) and offered/s (the rate the
// producers achieved). mode=poll disables LISTEN and is the baseline. Each
// iteration runs benchDuration; use -benchtime 1x.
//
//	go test -run '^$' -bench RelayLag -benchtime 1x ./shared/outbox/
func BenchmarkRelayLag(b *testing.B) {
	for _, mode := range []struct {
		name     string
		pollOnly bool
	}{{"listen", false}, {"poll", true}} {
		for _, rate := range []int{200, 1000} {
			b.Run(fmt.Sprintf("mode=%s/rate=%d", mode.name, rate), func(b *testing.B) {
				var lags []time.Duration
				var delivered int
				var span, offered time.Duration
				for range b.N {
					l, s, o := relayLag(b, rate, mode.pollOnly)
					lags = append(lags, l...)
					delivered += len(l)
					span += s
					offered += o
				}
				slices.Sort(lags)
				ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
				b.ReportMetric(0, "ns/op")
				b.ReportMetric(ms(lags[len(lags)/2]), "p50_ms")
				b.ReportMetric(ms(lags[len(lags)*99/100]), "p99_ms")
				b.ReportMetric(ms(lags[len(lags)-1]), "max_ms")
				b.ReportMetric(float64(delivered)/span.Seconds(), "events/s")
				b.ReportMetric(float64(delivered)/offered.Seconds(), "offered/s")
			})
		}
	}
}

// relayLag runs one measurement and returns every event's lag, the time from
// the first commit to the last send, and the time the producers took.
func relayLag(b *testing.B, rate int, pollOnly bool) (lags []time.Duration, span, offered time.Duration) {
	b.StopTimer()
	f := fixture{pool: dbtest.Database(b, outbox.Migrations)}
	n := int(benchDuration.Seconds() * float64(rate))
	evs := make([]event.Event, n)
	index := make(map[string]int, n)
	for i := range evs {
		evs[i] = newEvent(b, context.Background(), i)
		index[evs[i].ID()] = i
	}
	committing := make([]time.Time, n)
	sentAt := make([]atomic.Int64, n)
	var sent atomic.Int64
	sender := events.SenderFunc(func(_ context.Context, e event.Event) error {
		sentAt[index[e.ID()]].Store(time.Now().UnixNano())
		sent.Add(1)
		return nil
	})

	ctx, cancel := context.WithCancel(context.Background())
	relayDone := make(chan error, 1)
	go func() { relayDone <- outbox.NewRelay(f.pool, sender, outbox.Options{DisableListen: pollOnly}).Run(ctx) }()
	defer func() { cancel(); <-relayDone }()
	time.Sleep(300 * time.Millisecond) // LISTEN in place
	b.StartTimer()

	// Open loop: event i is due at start + i/rate whatever the producers'
	// progress; eight producers commit them.
	jobs := make(chan int, n)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range jobs {
				tx, err := f.pool.Begin(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				if err := outbox.Add(ctx, tx, evs[i]); err != nil {
					b.Error(err)
					_ = tx.Rollback(ctx)
					return
				}
				committing[i] = time.Now()
				if err := tx.Commit(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	offered = time.Since(start)
	if b.Failed() {
		b.FailNow()
	}

	deadline := time.Now().Add(30 * time.Second)
	for sent.Load() < int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("relay sent %d of %d events in time", sent.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()

	lags = make([]time.Duration, n)
	var last int64
	for i := range n {
		at := sentAt[i].Load()
		lags[i] = time.Duration(at - committing[i].UnixNano())
		last = max(last, at)
	}
	return lags, time.Duration(last - committing[0].UnixNano()), offered
}
