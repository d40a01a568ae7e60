package broker

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/cloudphone/cloudphone/shared/apierr"
)

func TestIngressAcceptsBinaryAndStructuredEvents(t *testing.T) {
	t.Parallel()
	f := setup(t)
	b := f.broker(t, []Trigger{trigger("paid", typePaid, "fn", Delivery{})}, Options{})
	run(t, b)

	binary := newEvent(t, typePaid)
	req, err := cehttp.NewHTTPRequestFromEvent(context.Background(), "http://broker/default/cloudphone", binary)
	if err != nil {
		t.Fatal(err)
	}
	signAs(t, req, "billing")
	rec := httptest.NewRecorder()
	b.ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("binary POST answered %d %s, want 202", rec.Code, rec.Body)
	}

	structured := newEvent(t, typePaid)
	doc, err := json.Marshal(structured)
	if err != nil {
		t.Fatal(err)
	}
	req = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(doc)))
	req.Header.Set("Content-Type", "application/cloudevents+json")
	signAs(t, req, "billing")
	rec = httptest.NewRecorder()
	b.ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("structured POST answered %d %s, want 202", rec.Code, rec.Body)
	}

	eventually(t, "both events were delivered", func() bool { return len(f.subs.to("fn")) == 2 })
	got := map[string]bool{}
	for _, c := range f.subs.to("fn") {
		got[c.event.ID()] = true
	}
	if !got[binary.ID()] || !got[structured.ID()] {
		t.Errorf("delivered %v, want %s and %s", got, binary.ID(), structured.ID())
	}
}

func TestIngressRefusesWhatIsNotAValidEvent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	b := f.broker(t, []Trigger{{Name: "all", Subscriber: "fn"}}, Options{})
	tests := []struct {
		name    string
		method  string
		headers map[string]string
		body    string
		status  int
		code    apierr.Code
	}{
		{"plain JSON", http.MethodPost, map[string]string{"Content-Type": "application/json"}, `{"a":1}`, 400, apierr.Invalid},
		{"binary without source", http.MethodPost, map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "1", "Ce-Type": typePaid}, ``, 400, apierr.Invalid},
		{"broken structured", http.MethodPost, map[string]string{"Content-Type": "application/cloudevents+json"}, `{"specversion":`, 400, apierr.Invalid},
		{"too large", http.MethodPost, map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "1", "Ce-Type": typePaid, "Ce-Source": "/x"},
			strings.Repeat("x", MaxEventBytes+1), 413, apierr.TooLarge},
		{"GET", http.MethodGet, nil, ``, 400, apierr.Invalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(tc.method, "/", strings.NewReader(tc.body))
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			signAs(t, req, "billing")
			rec := httptest.NewRecorder()
			b.ServeHTTP(rec, req)
			var body apierr.Body
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("answer %d is not the error JSON: %q", rec.Code, rec.Body)
			}
			if rec.Code != tc.status || body.Error.Code != tc.code {
				t.Errorf("answered %d %s, want %d %s", rec.Code, body.Error.Code, tc.status, tc.code)
			}
		})
	}
	if n := f.rows(t, "pending"); n != 0 {
		t.Errorf("%d rows stored from refused requests", n)
	}
}
