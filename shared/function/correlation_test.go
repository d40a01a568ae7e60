package function

import (
	"net/http"
	"net/http/httptest"
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
