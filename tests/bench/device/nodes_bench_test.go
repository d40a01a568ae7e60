package devicebench

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
)

// secondEngine is another address of this machine's engine (/var/run is
// /run here), so that the runtime treats it as a second node's engine with
// its own client and events watch.
const (
	firstEngine  = "unix:///var/run/docker.sock"
	secondEngine = "unix:///run/docker.sock"
)

// BenchmarkCreateToRunningOverNodes times 40 creates issued at once, from
// the first command to the last started report, with the phones on one node
// (the baseline, measured in the same run) and spread over two nodes whose
// engines are two addresses of the same daemon: what it shows is the
// runtime's cost of serving two nodes (per-node clients, watches and
// checks), not a second machine's capacity.
func BenchmarkCreateToRunningOverNodes(b *testing.B) {
	if _, err := os.Stat("/run/docker.sock"); err != nil {
		b.Skip("needs the engine's socket at /run/docker.sock too")
	}
	for _, nodes := range []int{1, 2} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			f := newFixture(b, 8)
			defer f.close()
			ids := [2]string{}
			for i, host := range []string{firstEngine, secondEngine} {
				err := f.pool.QueryRow(context.Background(), `INSERT INTO nodes (name, docker_host, adb_host, cpu_cores, memory_mb)
					VALUES ($1, $2, '127.0.0.1', 64, 262144) RETURNING id::text`, fmt.Sprintf("bench-%d", i), host).Scan(&ids[i])
				if err != nil {
					b.Fatal(err)
				}
			}
			var wall, per []time.Duration
			var mu sync.Mutex
			b.ResetTimer()
			for i := range b.N {
				var wg sync.WaitGroup
				start := time.Now()
				for j := range 40 {
					id := fmt.Sprintf("n%d-%d-%d-%s", nodes, i, j, randomHex(3))
					cmd := createCmd(b, id, 16)
					k := j % nodes
					cmd.NodeID, cmd.DockerHost = ids[k], []string{firstEngine, secondEngine}[k]
					ch := f.reports(id)
					wg.Go(func() {
						sent := time.Now()
						f.send(b, deviceevents.EventCreateRequested, cmd)
						await(b, ch, id, deviceevents.EventRuntimeStarted, 3*time.Minute)
						mu.Lock()
						per = append(per, time.Since(sent))
						mu.Unlock()
					})
				}
				wg.Wait()
				wall = append(wall, time.Since(start))
			}
			b.StopTimer()
			b.ReportMetric(ms(percentile(wall, 50)), "all-40-running-ms")
			b.ReportMetric(ms(percentile(per, 50)), "p50-phone-ms")
			b.ReportMetric(ms(percentile(per, 99)), "p99-phone-ms")
		})
	}
}
