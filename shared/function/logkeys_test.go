package function

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/logging/logtest"
)

type failingEvents struct{}

func (failingEvents) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	switch e.Type() {
	case "cloudphone.test.later":
		return nil, apierr.New(apierr.Conflict, "not yet")
	case "cloudphone.test.refused":
		return nil, apierr.New(apierr.Unprocessable, "never")
	}
	return nil, errors.New("boom")
}

// The host gives every function a logger that names it; the runtime's own
// lines (requests, refused and failed events) must not name it again.
func TestRequestAndEventLogLinesHoldEachKeyOnce(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := logging.New(&buf, "debug")
	web, err := NewInstance(Spec{Name: "pot", Kind: KindHTTP}, teapot{}, log.With("function", "pot"), nil)
	if err != nil {
		t.Fatal(err)
	}
	types := []string{"cloudphone.test.later", "cloudphone.test.refused", "cloudphone.test.failed"}
	ev, err := NewInstance(Spec{Name: "sink", Kind: KindEvent, Consumes: types}, failingEvents{}, log.With("function", "sink"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/brew/1", nil)
	req.Header.Set(CorrelationHeader, "req-1")
	web.ServeHTTP(httptest.NewRecorder(), req)
	for _, typ := range append(types, "cloudphone.test.unknown") {
		r := httptest.NewRequest("POST", "/", strings.NewReader(`{}`))
		r.Header.Set("Ce-Specversion", "1.0")
		r.Header.Set("Ce-Id", "e-"+typ)
		r.Header.Set("Ce-Type", typ)
		r.Header.Set("Ce-Source", "/test")
		r.Header.Set("Ce-Correlationid", "corr-"+typ)
		r.Header.Set("Content-Type", "application/json")
		ev.ServeHTTP(httptest.NewRecorder(), r)
	}
	lines := logtest.Lines(t, &buf)
	if len(lines) < 5 {
		t.Fatalf("%d lines, want one per request and per failed event:\n%s", len(lines), buf.String())
	}
	for _, l := range lines {
		if l["function"] != "pot" && l["function"] != "sink" {
			t.Errorf("line without its function: %v", l)
		}
		if l[logging.CorrelationKey] == nil && l["msg"] != "event refused" { // refused before it was decoded
			t.Errorf("line without its correlation id: %v", l)
		}
	}
}
