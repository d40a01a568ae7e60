package function_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// drainProbe answers GET /slow only when released, and records whether Stop
// ran after that request had finished.
type drainProbe struct {
	entered     chan struct{}
	release     chan struct{}
	slowDone    atomic.Bool
	stopped     atomic.Bool
	stopAfterIt atomic.Bool
}

func (f *drainProbe) Handle(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/slow" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	close(f.entered)
	<-f.release
	_, _ = io.WriteString(w, "finished")
	f.slowDone.Store(true)
}

func (f *drainProbe) Stop(context.Context) error {
	f.stopAfterIt.Store(f.slowDone.Load())
	f.stopped.Store(true)
	return nil
}

func TestServeContextDrainsInFlightRequestsThenStops(t *testing.T) {
	t.Parallel()
	fn := &drainProbe{entered: make(chan struct{}), release: make(chan struct{})}
	s := serve(t, httpSpec, fn)
	s.waitStatus(t, "/health/readiness", http.StatusOK)

	type result struct {
		status int
		body   string
		err    error
	}
	slow := make(chan result, 1)
	go func() {
		resp, err := s.client.Get(s.base + "/slow")
		if err != nil {
			slow <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slow <- result{status: resp.StatusCode, body: string(b)}
	}()
	<-fn.entered

	s.cancel()
	addr := strings.TrimPrefix(s.base, "http://")
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break // refused: the listener is closed
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			t.Fatal("new connections are still accepted 5 s after the context was cancelled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if fn.stopped.Load() {
		t.Fatal("Stop ran while a request was still in flight")
	}

	close(fn.release)
	r := <-slow
	if r.err != nil || r.status != http.StatusOK || r.body != "finished" {
		t.Fatalf("in-flight request during drain: status %d body %q err %v, want 200 finished", r.status, r.body, r.err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("ServeContext after a clean drain: %v", err)
		}
		s.done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("ServeContext did not return after draining")
	}
	if !fn.stopped.Load() || !fn.stopAfterIt.Load() {
		t.Fatalf("Stop called = %v, after the in-flight request = %v; want both", fn.stopped.Load(), fn.stopAfterIt.Load())
	}
}

func TestMetricsCountEventDeliveriesOnTheirOwnListenerAndEveryAnswerCarriesSecurityHeaders(t *testing.T) {
	t.Parallel()
	fn := eventFunc(func(context.Context, event.Event) (*event.Event, error) { return nil, nil })
	s := serve(t, eventSpec, fn)
	s.waitStatus(t, "/health/readiness", http.StatusOK)

	req, err := cehttp.NewHTTPRequestFromEvent(context.Background(), s.base+"/", newEvent(t, typeHappened))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("delivery = %d, want 200", resp.StatusCode)
	}

	// Never on the public port, and every answer there carries the
	// security headers, errors included.
	if st := s.get(t, "/metrics"); st == http.StatusOK {
		t.Fatalf("GET /metrics on the function's port = %d, want it not served", st)
	}
	for _, path := range []string{"/metrics", "/health/readiness"} {
		resp, err := s.client.Get(s.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("X-Frame-Options") != "DENY" ||
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("GET %s (%d) lacks the security headers: %v", path, resp.StatusCode, resp.Header)
		}
	}
	resp, err = s.client.Get(s.metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics = %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	want := `cloudphone_event_deliveries_total{function="contract-probe",outcome="ack",type="` + typeHappened + `"} 1`
	if !strings.Contains(string(body), want) {
		t.Fatalf("/metrics lacks %s:\n%s", want, grepLines(string(body), "cloudphone_"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}
