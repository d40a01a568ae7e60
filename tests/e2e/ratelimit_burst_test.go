package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// A burst of registrations from one fresh address, sent the moment a platform
// has started (cold Redis connections, empty caches), never admits more than
// the limit of 3 a minute: 20 platform starts, 40 parallel requests each.
func TestRegistrationBurstsRightAfterStartNeverPassTheLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.limits = "" // the default table: register 3/min per IP
	e.extra = map[string]string{"CLOUDPHONE_TRUSTED_PROXIES": "127.0.0.1/32"}
	for round := range 20 {
		p := start(t, e, &subscriber{})
		address := fmt.Sprintf("198.51.100.%d", round+1) // a fresh client behind the trusted proxy
		var admitted, other atomic.Int32
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() {
				name := fmt.Sprintf("burst%d_%d", round, i)
				req, err := http.NewRequest("POST", p.URL()+"/api/v1/auth/register", strings.NewReader(
					`{"username":"`+name+`","email":"`+name+`@example.com","password":"correct horse battery"}`))
				if err != nil {
					t.Error(err)
					return
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Forwarded-For", address)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusCreated:
					admitted.Add(1)
				case http.StatusTooManyRequests:
				default:
					other.Add(1)
				}
			})
		}
		wg.Wait()
		p.stop(t)
		if n := admitted.Load(); n > 3 {
			t.Fatalf("burst %d right after a start admitted %d registrations; the limit is 3", round+1, n)
		}
		if n := other.Load(); n > 0 {
			t.Errorf("burst %d: %d answers were neither 201 nor 429", round+1, n)
		}
	}
}
