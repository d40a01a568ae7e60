package notification_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/functions/notification/notificationtest"
	"github.com/cloudphone/cloudphone/shared/events"
)

// timedSink notes when each notification reached its stream.
type timedSink struct {
	ready   chan struct{}
	arrived func(n notification.Notification, at time.Time)
}

func (s *timedSink) Ready() error { close(s.ready); return nil }
func (s *timedSink) Send(n notification.Notification) error {
	s.arrived(n, time.Now())
	return nil
}
func (s *timedSink) Heartbeat() error { return nil }

// BenchmarkStreamDelivery measures how long a notification takes from the
// start of Record (its transaction and commit included) to its arrival on
// the user's open stream, with 1,000 streams open (one per user), at 100
// and 1,000 notifications a second, and the heap each open stream costs.
//
//	go run ./infra/cmd/devenv -- go test -run '^$' -bench StreamDelivery -benchtime 1x ./functions/notification/
func BenchmarkStreamDelivery(b *testing.B) {
	const streams = 1000
	for _, rate := range []int{100, 1000} {
		b.Run(fmt.Sprintf("streams=%d/rate=%d", streams, rate), func(b *testing.B) {
			env := notificationtest.New(b, func(c *notification.Config) {
				c.StreamHeartbeat, c.StreamsPerUser = time.Hour, 1
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var (
				mu      sync.Mutex
				started = map[string]time.Time{} // device id → Record start
				lat     []time.Duration
				got     = make(chan struct{}, 1<<16)
			)
			users := make([]string, streams)
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			var wg sync.WaitGroup
			for i := range users {
				users[i] = events.NewID()
				s := &timedSink{ready: make(chan struct{}), arrived: func(n notification.Notification, at time.Time) {
					var d struct {
						DeviceID string `json:"device_id"`
					}
					_ = json.Unmarshal(n.Data, &d)
					mu.Lock()
					defer mu.Unlock()
					lat = append(lat, at.Sub(started[d.DeviceID]))
					got <- struct{}{}
				}}
				wg.Add(1)
				go func() { defer wg.Done(); _ = env.Service.Stream(ctx, users[i], "", s) }()
				<-s.ready
			}
			runtime.GC()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			perStream := float64(after.HeapInuse-before.HeapInuse) / streams

			count := rate * 5 // five seconds of load
			if count > 2000 {
				count = 2000
			}
			tick := time.NewTicker(time.Second / time.Duration(rate))
			defer tick.Stop()
			begin := time.Now()
			var send sync.WaitGroup
			for i := range count {
				<-tick.C
				send.Add(1)
				go func() {
					defer send.Done()
					dev := events.NewID()
					ev := notificationtest.Running(b, users[i%streams], dev)
					mu.Lock()
					started[dev] = time.Now()
					mu.Unlock()
					if _, err := env.Service.Record(ctx, ev); err != nil {
						b.Error(err)
					}
				}()
			}
			send.Wait()
			achieved := float64(count) / time.Since(begin).Seconds()
			for range count {
				select {
				case <-got:
				case <-time.After(30 * time.Second):
					b.Fatal("notifications missing on the streams")
				}
			}
			cancel()
			wg.Wait()
			mu.Lock()
			slices.Sort(lat)
			p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
			mu.Unlock()
			b.ReportMetric(float64(p50.Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(p99.Microseconds())/1000, "p99_ms")
			b.ReportMetric(achieved, "notifications/s")
			b.ReportMetric(perStream, "heap_B/stream")
		})
	}
}
