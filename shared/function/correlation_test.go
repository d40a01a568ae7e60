package function

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloudphone/cloudphone/shared/logging"
)

type echoCorrelation struct{}

func (echoCorrelation) Handle(w http.ResponseWriter, r *http.Request) {
	_, _ = w.Write([]byte(logging.Correlation(r.Context())))
}

func TestHTTPRequestsCarryACorrelationIDIntoTheirContext(t *testing.T) {
	t.Parallel()
	in, err := NewInstance(Spec{Name: "echo", Kind: KindHTTP}, echoCorrelation{}, logging.Discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, sent string
		keep       bool
	}{
		{"caller's id is kept", "req-42.a_b", true},
		{"missing id is made", "", false},
		{"malformed id is replaced", "bad id\nwith newline", false},
		{"overlong id is replaced", string(make([]byte, 65)), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			if c.sent != "" {
				req.Header.Set(CorrelationHeader, c.sent)
			}
			rec := httptest.NewRecorder()
			in.ServeHTTP(rec, req)
			got, echoed := rec.Body.String(), rec.Header().Get(CorrelationHeader)
			if got == "" || got != echoed {
				t.Fatalf("context id %q, response header %q", got, echoed)
			}
			if (got == c.sent) != c.keep {
				t.Fatalf("sent %q, got %q", c.sent, got)
			}
		})
	}
}

type teapot struct{}

func (teapot) Handle(w http.ResponseWriter, r *http.Request) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /brew/{id}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	mux.ServeHTTP(w, r)
}

func TestEveryRequestIsLoggedOnceWithRouteStatusTimeAndCorrelationButNoPath(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	in, err := NewInstance(Spec{Name: "pot", Kind: KindHTTP}, teapot{}, logging.New(&buf, "info").With("function", "pot"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/brew/secret-42?ticket=t0p", nil)
	req.Header.Set(CorrelationHeader, "req-7")
	in.ServeHTTP(httptest.NewRecorder(), req)
	in.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/nowhere", nil))

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want one a request:\n%s", len(lines), buf.String())
	}
	var first, second map[string]any
	if json.Unmarshal([]byte(lines[0]), &first) != nil || json.Unmarshal([]byte(lines[1]), &second) != nil {
		t.Fatalf("not JSON lines:\n%s", buf.String())
	}
	if first["msg"] != "request" || first["method"] != "GET" || first["route"] != "GET /brew/{id}" || first["status"] != float64(418) ||
		first["correlation_id"] != "req-7" || first["function"] != "pot" {
		t.Errorf("first line %v", first)
	}
	if _, ok := first["duration_ms"].(float64); !ok {
		t.Errorf("no duration_ms in %v", first)
	}
	if strings.Contains(lines[0], "secret-42") || strings.Contains(lines[0], "t0p") {
		t.Errorf("the path or query reached the log: %s", lines[0])
	}
	if second["route"] != "unmatched" || second["status"] != float64(404) || second["correlation_id"] == "" {
		t.Errorf("second line %v", second)
	}
}
