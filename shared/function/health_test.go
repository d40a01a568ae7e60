package function_test

import (
	"context"
	"net/http"
	"testing"
)

// slowStarter is an HTTP function whose Start blocks until release is closed
// and then returns err.
type slowStarter struct {
	release chan struct{}
	err     error
}

func (f *slowStarter) Start(ctx context.Context, _ map[string]string) error {
	select {
	case <-f.release:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *slowStarter) Handle(w http.ResponseWriter, _ *http.Request) {
	w.WriteHeader(http.StatusNoContent)
}

func TestHealthPathsFollowStart(t *testing.T) {
	t.Parallel()
	fn := &slowStarter{release: make(chan struct{})}
	s := serve(t, httpSpec, fn)

	// Before Start returns: readiness (Knative and OpenFaaS, whose watchdog
	// answers /_/health with 503 until started) says no, in time for a probe;
	// liveness says the process is fine.
	before := map[string]int{
		"/health/readiness": http.StatusServiceUnavailable,
		"/_/ready":          http.StatusServiceUnavailable,
		"/_/health":         http.StatusServiceUnavailable,
		"/health/liveness":  http.StatusOK,
	}
	s.waitStatus(t, "/health/liveness", http.StatusOK) // listening
	for path, want := range before {
		if got := s.get(t, path); got != want {
			t.Errorf("before Start returned: GET %s = %d, want %d", path, got, want)
		}
	}

	close(fn.release)
	s.waitStatus(t, "/health/readiness", http.StatusOK)
	for _, path := range []string{"/health/readiness", "/_/ready", "/health/liveness", "/_/health"} {
		if got := s.get(t, path); got != http.StatusOK {
			t.Errorf("after Start returned: GET %s = %d, want 200", path, got)
		}
	}
}

func TestReadinessIsNeverOKAfterAFailedStart(t *testing.T) {
	t.Parallel()
	fn := &slowStarter{release: make(chan struct{}), err: errBoom}
	close(fn.release)
	s := serve(t, httpSpec, fn)

	s.waitStatus(t, "/health/liveness", http.StatusOK)
	for _, path := range []string{"/health/readiness", "/_/ready"} {
		if got := s.get(t, path); got == http.StatusOK {
			t.Errorf("GET %s = 200 after Start failed", path)
		}
	}
}
