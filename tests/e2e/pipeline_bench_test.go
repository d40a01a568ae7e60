package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/outbox"
)

// BenchmarkPipeline measures events per second end to end on the local
// platform: committed into the user context's outbox, relayed to the embedded
// broker, delivered through a Trigger to a handler that records each once with
// the inbox.
func BenchmarkPipeline(b *testing.B) {
	const total = 3000
	sub := &subscriber{}
	p := start(b, newEnv(b), sub)
	ctx := context.Background()
	pool, err := p.Resources().Postgres(ctx, user.Database, outbox.Migrations, user.Migrations)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		var base int
		if err := sub.pool.Load().QueryRow(ctx, `SELECT count(*) FROM received`).Scan(&base); err != nil {
			b.Fatal(err)
		}
		begin := time.Now()
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := w; i < total; i += 8 {
					e, err := events.New(ctx, userevents.EventRegistered, "/cloudphone/bench", fmt.Sprintf("bench-%d-%d", base, i), map[string]int{"n": i})
					if err != nil {
						b.Error(err)
						return
					}
					if err := db.WithTx(ctx, pool, func(tx pgx.Tx) error { return outbox.Add(ctx, tx, e) }); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		var n int
		for n < base+total {
			if time.Since(begin) > 2*time.Minute {
				b.Fatalf("only %d of %d events arrived", n-base, total)
			}
			time.Sleep(5 * time.Millisecond)
			if err := sub.pool.Load().QueryRow(ctx, `SELECT count(*) FROM received`).Scan(&n); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(total)/time.Since(begin).Seconds(), "events/s")
	}
}
