package device

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/shared/db/dbtest"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/outbox"
)

// fillNodes registers nodes device hosts (every tenth labelled gpu=true,
// one in twenty draining, one in fifty down) and spreads phones devices
// over them, with their allocations, as SQL does it fastest.
func fillNodes(b *testing.B, pool *pgxpool.Pool, nodes, phones int) {
	b.Helper()
	ctx := context.Background()
	_, err := pool.Exec(ctx, `
INSERT INTO nodes (name, docker_host, adb_host, cpu_cores, memory_mb, labels, status, health)
SELECT 'node-' || i, 'tcp://10.' || (i / 250) || '.' || (i % 250) || '.1:2376', '10.0.0.1', 64, 262144,
    CASE WHEN i % 10 = 0 THEN '{"gpu": "true"}'::jsonb ELSE '{}'::jsonb END,
    CASE WHEN i % 20 = 7 THEN 'draining' ELSE 'active' END,
    CASE WHEN i % 50 = 13 THEN 'down' ELSE 'up' END
FROM generate_series(1, $1) i`, nodes)
	if err != nil {
		b.Fatal(err)
	}
	_, err = pool.Exec(ctx, `
WITH n AS (SELECT id, row_number() OVER (ORDER BY name) - 1 AS k FROM nodes)
INSERT INTO devices (id, user_id, name, state, node_id, image, cpu_cores, memory_mb, storage_gb, adb_port)
SELECT gen_random_uuid(), gen_random_uuid(), 'p', 'running', n.id, 'img', 1, 2048, 8, 1 + i
FROM generate_series(0, $1 - 1) i JOIN n ON n.k = (i * 7919) % $2`, phones, nodes)
	if err != nil {
		b.Fatal(err)
	}
	_, err = pool.Exec(ctx, `UPDATE nodes SET allocated_cpu_cores = s.cpu, allocated_memory_mb = s.mem
FROM (SELECT node_id, sum(cpu_cores) AS cpu, sum(memory_mb) AS mem FROM devices GROUP BY node_id) s WHERE s.node_id = nodes.id`)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE nodes; ANALYZE devices`); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPlacement times one placement decision (candidates, the
// conditional allocation, in a transaction rolled back) with 1,000 nodes
// and 10,000 phones in the database, spread and pack, with and without an
// asked label; baseline is the same decision with one node and no phones.
//
//	go test -run '^$' -bench Placement ./functions/device/
func BenchmarkPlacement(b *testing.B) {
	cases := []struct {
		name          string
		nodes, phones int
		labels        map[string]string
		pack          bool
	}{
		{"baseline-1-node", 1, 0, nil, false},
		{"1000-nodes-10000-phones/spread", 1000, 10000, nil, false},
		{"1000-nodes-10000-phones/pack", 1000, 10000, nil, true},
		{"1000-nodes-10000-phones/spread-gpu-label", 1000, 10000, map[string]string{"gpu": "true"}, false},
	}
	pools := map[string]*pgxpool.Pool{}
	parent := b // the databases live until every case ran
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			key := fmt.Sprint(c.nodes, c.phones)
			pool := pools[key]
			if pool == nil {
				pool = dbtest.Database(parent, outbox.Migrations, inbox.Migrations, Migrations)
				fillNodes(b, pool, c.nodes, c.phones)
				pools[key] = pool
			}
			ctx := context.Background()
			var worst time.Duration
			for b.Loop() {
				start := time.Now()
				tx, err := pool.Begin(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := place(ctx, tx, 1, 2048, c.labels, c.pack); err != nil {
					b.Fatal(err)
				}
				_ = tx.Rollback(ctx)
				worst = max(worst, time.Since(start))
			}
			b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
		})
	}
}
