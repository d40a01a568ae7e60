package function_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/metrics"
)

// recorder is an event function that keeps what it received and answers
// with result.
type recorder struct {
	mu     sync.Mutex
	got    []event.Event
	result func(ctx context.Context, e event.Event) (*event.Event, error)
}

func (r *recorder) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	r.mu.Lock()
	r.got = append(r.got, e)
	r.mu.Unlock()
	if r.result == nil {
		return nil, nil
	}
	return r.result(ctx, e)
}

func (r *recorder) received(t *testing.T) []event.Event {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.got...)
}

// eventHandler returns fn as the runtime serves an event function.
func eventHandler(t *testing.T, fn function.EventFunction) http.Handler {
	t.Helper()
	in, err := function.NewInstance(eventSpec, fn, logging.Discard(), metrics.New())
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func do(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func binaryRequest(t *testing.T, e event.Event) *http.Request {
	t.Helper()
	req, err := cehttp.NewHTTPRequestFromEvent(context.Background(), "http://function/", e)
	if err != nil {
		t.Fatal(err)
	}
	if req.Header.Get("Ce-Id") == "" {
		t.Fatal("the SDK did not build a binary-mode request")
	}
	return req
}

func structuredRequest(t *testing.T, e event.Event) *http.Request {
	t.Helper()
	body, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/cloudevents+json; charset=utf-8")
	return req
}

func TestBinaryAndStructuredEventsReachTheFunctionAlike(t *testing.T) {
	t.Parallel()
	fn := &recorder{}
	h := eventHandler(t, fn)
	sent := newEvent(t, typeHappened)

	for name, req := range map[string]*http.Request{
		"binary":     binaryRequest(t, sent),
		"structured": structuredRequest(t, sent),
	} {
		if rec := do(h, req); rec.Code != http.StatusOK {
			t.Fatalf("%s delivery = %d %s", name, rec.Code, rec.Body)
		}
	}
	got := fn.received(t)
	if len(got) != 2 {
		t.Fatalf("the function received %d events, want 2", len(got))
	}
	for i, e := range got {
		mode := []string{"binary", "structured"}[i]
		if e.ID() != sent.ID() || e.Type() != sent.Type() || e.Source() != sent.Source() ||
			e.Subject() != sent.Subject() || !e.Time().Equal(sent.Time()) ||
			e.DataContentType() != sent.DataContentType() || e.SpecVersion() != sent.SpecVersion() {
			t.Errorf("%s: received attributes\n%v\nwant\n%v", mode, e.Context, sent.Context)
		}
		if !reflect.DeepEqual(e.Extensions(), sent.Extensions()) {
			t.Errorf("%s: extensions %v, want %v", mode, e.Extensions(), sent.Extensions())
		}
		var data, want map[string]any
		if err := e.DataAs(&data); err != nil {
			t.Fatalf("%s: DataAs: %v", mode, err)
		}
		_ = sent.DataAs(&want)
		if !reflect.DeepEqual(data, want) {
			t.Errorf("%s: data %v, want %v", mode, data, want)
		}
	}
}

func TestPlainPostIsWrappedIntoAnEventOfTheFirstConsumedType(t *testing.T) {
	t.Parallel()
	fn := &recorder{}
	h := eventHandler(t, fn)
	body := `{"job":"redrive"}`
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Call-Id", "cron-call-1")

	if rec := do(h, req); rec.Code != http.StatusOK {
		t.Fatalf("plain POST = %d %s", rec.Code, rec.Body)
	}
	got := fn.received(t)
	if len(got) != 1 {
		t.Fatalf("the function received %d events", len(got))
	}
	e := got[0]
	if e.Type() != eventSpec.Consumes[0] || e.ID() != "cron-call-1" || e.Source() != "/cloudphone/http/"+eventSpec.Name {
		t.Errorf("wrapped event: type %q id %q source %q", e.Type(), e.ID(), e.Source())
	}
	if e.DataContentType() != "application/json" || string(e.Data()) != body {
		t.Errorf("wrapped event data: %q %q, want application/json %q", e.DataContentType(), e.Data(), body)
	}
	if err := e.Validate(); err != nil {
		t.Errorf("wrapped event is not valid: %v", err)
	}
}

func TestRefusedDeliveriesAreClientErrors(t *testing.T) {
	t.Parallel()
	notConsumed := newEvent(t, "cloudphone.test.unknown.happened")
	noID := binaryRequest(t, newEvent(t, typeHappened))
	noID.Header.Del("Ce-Id")
	big := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(bytes.Repeat([]byte("x"), function.MaxEventBytes+1)))
	big.Header.Set("Content-Type", "application/octet-stream")
	bigCE := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(bytes.Repeat([]byte("x"), function.MaxEventBytes+1)))
	bigCE.Header = binaryRequest(t, newEvent(t, typeHappened)).Header.Clone()

	tests := []struct {
		name   string
		req    *http.Request
		status int
		code   apierr.Code
	}{
		{"type not consumed", binaryRequest(t, notConsumed), http.StatusBadRequest, apierr.Invalid},
		{"type not consumed, structured", structuredRequest(t, notConsumed), http.StatusBadRequest, apierr.Invalid},
		{"cloudevent without id", noID, http.StatusBadRequest, apierr.Invalid},
		{"plain body over MaxEventBytes", big, http.StatusRequestEntityTooLarge, apierr.TooLarge},
		{"cloudevent over MaxEventBytes", bigCE, http.StatusRequestEntityTooLarge, apierr.TooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fn := &recorder{}
			rec := do(eventHandler(t, fn), tt.req)
			if rec.Code != tt.status {
				t.Fatalf("status = %d %s, want %d", rec.Code, rec.Body, tt.status)
			}
			if code := errorCode(t, rec.Body.Bytes()); code != tt.code {
				t.Errorf("error code = %q, want %q", code, tt.code)
			}
			if n := len(fn.received(t)); n != 0 {
				t.Errorf("the function was called %d times for a refused delivery", n)
			}
		})
	}
}

func TestHandlerResultsMapToBrokerStatuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		result func(ctx context.Context, e event.Event) (*event.Event, error)
		status int
		code   apierr.Code // "" when the answer is not an error
	}{
		{"nil acknowledges", nil, http.StatusOK, ""},
		{"plain error is retried", func(context.Context, event.Event) (*event.Event, error) {
			return nil, fmt.Errorf("database down: %w", errBoom)
		}, http.StatusInternalServerError, apierr.Internal},
		{"permanent goes to the dead-letter sink", func(context.Context, event.Event) (*event.Event, error) {
			return nil, function.Permanent(errBoom)
		}, http.StatusUnprocessableEntity, apierr.Unprocessable},
		{"invalid goes to the dead-letter sink", func(context.Context, event.Event) (*event.Event, error) {
			return nil, apierr.New(apierr.Invalid, "bad payload")
		}, http.StatusBadRequest, apierr.Invalid},
		{"not yet is retried with backoff", func(context.Context, event.Event) (*event.Event, error) {
			return nil, function.NotYet(errBoom)
		}, http.StatusConflict, apierr.Conflict},
		{"rate limited is retried with backoff", func(context.Context, event.Event) (*event.Event, error) {
			return nil, apierr.New(apierr.RateLimited, "busy")
		}, http.StatusTooManyRequests, apierr.RateLimited},
		{"panic is retried", func(context.Context, event.Event) (*event.Event, error) {
			panic("handler bug")
		}, http.StatusInternalServerError, apierr.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := eventHandler(t, &recorder{result: tt.result})
			rec := do(h, binaryRequest(t, newEvent(t, typeHappened)))
			if rec.Code != tt.status {
				t.Fatalf("status = %d %s, want %d", rec.Code, rec.Body, tt.status)
			}
			if tt.code == "" {
				if rec.Header().Get("Ce-Id") != "" {
					t.Errorf("an acknowledgement without a reply carries ce-id %q", rec.Header().Get("Ce-Id"))
				}
				return
			}
			if code := errorCode(t, rec.Body.Bytes()); code != tt.code {
				t.Errorf("error code = %q, want %q", code, tt.code)
			}
			if tt.code == apierr.Internal && strings.Contains(rec.Body.String(), "boom") {
				t.Errorf("an internal error leaks its cause: %s", rec.Body)
			}
		})
	}
}

func TestReplyIsSentInBinaryModeLinkedToTheIncomingEvent(t *testing.T) {
	t.Parallel()
	fn := &recorder{result: func(context.Context, event.Event) (*event.Event, error) {
		r := event.New()
		r.SetID("reply-1")
		r.SetType("cloudphone.test.thing.answered")
		r.SetSource("/cloudphone/test/contract-probe")
		if err := r.SetData(event.ApplicationJSON, map[string]string{"ok": "yes"}); err != nil {
			return nil, err
		}
		return &r, nil
	}}
	incoming := newEvent(t, typeHappened)

	rec := do(eventHandler(t, fn), binaryRequest(t, incoming))
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d %s", rec.Code, rec.Body)
	}
	for header, want := range map[string]string{
		"Ce-Specversion":   "1.0",
		"Ce-Id":            "reply-1",
		"Ce-Type":          "cloudphone.test.thing.answered",
		"Ce-Source":        "/cloudphone/test/contract-probe",
		"Ce-Correlationid": "corr-1",
		"Ce-Causationid":   incoming.ID(),
		"Content-Type":     "application/json",
	} {
		if got := rec.Header().Get(header); got != want {
			t.Errorf("reply header %s = %q, want %q", header, got, want)
		}
	}
	if got := strings.TrimSpace(rec.Body.String()); got != `{"ok":"yes"}` {
		t.Errorf("reply body = %q", got)
	}
}

func TestAPanickingHandlerLeavesTheServerServing(t *testing.T) {
	t.Parallel()
	fn := &recorder{result: func(_ context.Context, e event.Event) (*event.Event, error) {
		if e.Type() == typeOther {
			panic("handler bug")
		}
		return nil, nil
	}}
	s := serve(t, eventSpec, fn)
	s.waitStatus(t, "/health/readiness", http.StatusOK)

	for _, step := range []struct {
		typ    string
		status int
	}{{typeOther, http.StatusInternalServerError}, {typeHappened, http.StatusOK}, {typeOther, http.StatusInternalServerError}} {
		e := newEvent(t, step.typ)
		req, err := cehttp.NewHTTPRequestFromEvent(context.Background(), s.base+"/", e)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatalf("delivery of %s after a panic: %v", step.typ, err)
		}
		resp.Body.Close()
		if resp.StatusCode != step.status {
			t.Fatalf("delivery of %s = %d, want %d", step.typ, resp.StatusCode, step.status)
		}
	}
}
