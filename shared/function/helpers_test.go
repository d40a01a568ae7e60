package function_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/config"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/metrics"
)

// Event types the test functions consume.
const (
	typeHappened = "cloudphone.test.thing.happened"
	typeOther    = "cloudphone.test.other.happened"
)

var eventSpec = function.Spec{
	Name:     "contract-probe",
	Context:  "scheduler",
	Kind:     function.KindEvent,
	Consumes: []string{typeHappened, typeOther},
}

var httpSpec = function.Spec{
	Name:    "contract-http",
	Context: "user",
	Kind:    function.KindHTTP,
	Routes:  []string{"GET /api/v1/contract"},
}

// eventFunc adapts a closure to function.EventFunction.
type eventFunc func(ctx context.Context, e event.Event) (*event.Event, error)

func (f eventFunc) Handle(ctx context.Context, e event.Event) (*event.Event, error) { return f(ctx, e) }

// httpFunc adapts a closure to function.HTTPFunction.
type httpFunc func(w http.ResponseWriter, r *http.Request)

func (f httpFunc) Handle(w http.ResponseWriter, r *http.Request) { f(w, r) }

// server is one function served by function.ServeContext on a loopback port.
type server struct {
	base    string
	metrics string // the /metrics URL, on its own listener
	cancel  context.CancelFunc
	done    chan error
	client  *http.Client
}

// serve runs fn with ServeContext until the test ends (or s.shutdown).
func serve(t *testing.T, spec function.Spec, fn any) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := ml.Addr().String()
	ml.Close()
	src := config.FromMap(map[string]string{
		"DRAIN_TIMEOUT":           "10s",
		"CLOUDPHONE_METRICS_ADDR": metricsAddr,
	})
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{
		base:    "http://" + ln.Addr().String(),
		metrics: "http://" + metricsAddr + "/metrics",
		cancel:  cancel,
		done:    make(chan error, 1),
		client:  &http.Client{Timeout: 5 * time.Second},
	}
	log := logging.Discard()
	m := metrics.New()
	in, err := function.NewInstance(spec, fn, log, m)
	if err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- function.ServeContext(ctx, in, src, ln, log, m) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
			t.Error("ServeContext did not return after its context was cancelled")
		}
	})
	return s
}

// get returns the status of GET path and fails the test on a transport error.
func (s *server) get(t *testing.T, path string) int {
	t.Helper()
	resp, err := s.client.Get(s.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// waitStatus polls GET path until it answers want.
func (s *server) waitStatus(t *testing.T, path string, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := s.get(t, path)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s = %d, want %d", path, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newEvent returns a valid event of typ with JSON data and a correlationid.
func newEvent(t *testing.T, typ string) event.Event {
	t.Helper()
	e := event.New()
	e.SetID("evt-" + typ)
	e.SetType(typ)
	e.SetSource("/cloudphone/test/sender")
	e.SetSubject("thing-7")
	e.SetTime(time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC))
	e.SetExtension("correlationid", "corr-1")
	if err := e.SetData(event.ApplicationJSON, map[string]any{"n": 1, "name": "seven"}); err != nil {
		t.Fatal(err)
	}
	return e
}

// errorCode decodes the platform's error body.
func errorCode(t *testing.T, body []byte) apierr.Code {
	t.Helper()
	var b apierr.Body
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("error body %q is not the platform's error JSON: %v", body, err)
	}
	return b.Error.Code
}

var errBoom = errors.New("boom")
