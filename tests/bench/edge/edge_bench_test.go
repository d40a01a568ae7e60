// Package edge_test measures HTTP requests per second through the edge (JWT
// verification, revocation check, rate limits, deny list) on a trivial
// function, against the same function served bare, in one run.
package edge_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
	"github.com/cloudphone/cloudphone/shared/edge"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/metrics"
)

const (
	connections = 64
	duration    = 4 * time.Second
)

func trivial(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok":true}`))
}

// BenchmarkEdgeHTTP drives 64 keep-alive connections for a fixed time and
// reports requests/s and latency percentiles, bare and behind the edge, then
// the ratio of the two throughputs (edge_per_bare).
func BenchmarkEdgeHTTP(b *testing.B) {
	rdb := dbtest.Redis(b, func(o *redis.Options) { o.PoolSize = 128 })

	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	dir := b.TempDir()
	limits := dir + "/limits.json"
	// Generous limits: the benchmark measures the cost of deciding, not
	// refusals. Every connection comes from one address, so the address rule
	// must admit more than the edge serves: 60,000 a second (a count is 16
	// bits, so a larger rate needs a shorter window, not a larger limit), and
	// a second run in the same minute still finds room.
	if err := os.WriteFile(limits, []byte(`{"rules":[{"name":"ip","limit":60000,"window":"1s"},{"name":"user","limit":60000,"window":"1s"}]}`), 0o600); err != nil {
		b.Fatal(err)
	}
	env := config.FromMap(map[string]string{
		"CLOUDPHONE_USER_TOKEN_PUBLIC_KEY": base64.StdEncoding.EncodeToString(pub),
		"CLOUDPHONE_RATE_LIMITS":           limits,
		"CLOUDPHONE_REDIS_PREFIX":          fmt.Sprintf("bench%d:", time.Now().UnixNano()),
	})
	ed, err := edge.New(env, rdb, auth.WatchRevocations(rdb, logging.Discard()), logging.Discard(), metrics.New())
	if err != nil {
		b.Fatal(err)
	}
	// One token per connection, as 64 different users would send.
	iss := auth.NewIssuer(priv, 15*time.Minute)
	tokens := make([]string, connections)
	for i := range tokens {
		tokens[i], _, _ = iss.Issue(auth.Principal{UserID: fmt.Sprintf("u%d", i), Username: fmt.Sprintf("u%d", i), Roles: []string{"user"}})
	}

	rps := map[string]float64{}
	for _, c := range []struct {
		name    string
		handler http.Handler
	}{
		{"bare", http.HandlerFunc(trivial)},
		{"edge", ed.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, ok := auth.PrincipalFrom(r.Context()); !ok {
				w.WriteHeader(http.StatusUnauthorized) // the edge must have verified the token
				return
			}
			trivial(w, r)
		}))},
	} {
		b.Run(c.name, func(b *testing.B) {
			srv := httptest.NewServer(c.handler)
			defer srv.Close()
			for range b.N {
				r, p50, p99, errs, first := load(srv.URL+"/api/v1/things", tokens)
				rps[c.name] = r
				b.ReportMetric(r, "req/s")
				b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
				if errs > 0 {
					b.Fatalf("%d requests failed, the first with %s", errs, first)
				}
			}
		})
	}
	b.Run("edge_per_bare", func(b *testing.B) {
		for range b.N {
		}
		b.ReportMetric(rps["edge"]/rps["bare"], "ratio")
	})
}

func load(url string, tokens []string) (rps float64, p50, p99 time.Duration, errs int, first string) {
	tr := &http.Transport{MaxIdleConnsPerHost: connections, MaxConnsPerHost: connections}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var mu sync.Mutex
	var lat []time.Duration
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for i := range connections {
		wg.Go(func() {
			var mine []time.Duration
			bad, why := 0, ""
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Authorization", "Bearer "+tokens[i])
			for time.Now().Before(deadline) {
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil || resp.StatusCode != http.StatusOK {
					bad++
					switch {
					case bad > 1:
					case err != nil:
						why = err.Error()
					default:
						why = fmt.Sprint(resp.StatusCode, " ", resp.Header.Get("Retry-After"), " ", resp.Header.Get("Ratelimit-Remaining"))
					}
				}
				if resp != nil {
					_, _ = resp.Body.Read(make([]byte, 64))
					resp.Body.Close()
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			if first == "" {
				first = why
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(lat)
	return float64(len(lat)) / duration.Seconds(), lat[len(lat)/2], lat[len(lat)*99/100], errs, first
}
