package notificationstream_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/functions/notification/notificationstream"
	"github.com/cloudphone/cloudphone/functions/notification/notificationtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/function"
	"github.com/cloudphone/cloudphone/shared/logging"
)

// serverTimeouts are far below the stream's life in these tests, to show a
// stream outlives the server's read and write timeouts.
const serverTimeouts = 500 * time.Millisecond

// serve runs f as the platform serves a function (runtime.Instance behind
// function.NewServer, with short timeouts) and returns its base URL.
func serve(t *testing.T, f *notificationstream.Function) string {
	t.Helper()
	in, err := function.NewInstance(function.Spec{Name: notificationstream.Name, Kind: function.KindHTTP, Routes: notificationstream.Routes}, f, logging.Discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := function.NewServer(ln.Addr().String(), in, function.ServerConfig{ReadTimeout: serverTimeouts, WriteTimeout: serverTimeouts}, logging.Discard())
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// sse is an open stream being read line by line.
type sse struct {
	resp  *http.Response
	lines chan string
}

func connect(t *testing.T, base, token, lastEventID string) *sse {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/notifications/stream", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	s := &sse{resp: resp, lines: make(chan string, 100)}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	return s
}

// until reads lines until one starts with prefix and returns it.
func (s *sse) until(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				t.Fatalf("stream ended before %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timeout:
			t.Fatalf("no %q line on the stream", prefix)
		}
	}
}

// event reads the next notification event.
func (s *sse) event(t *testing.T) (id string, n notification.Notification) {
	t.Helper()
	id = strings.TrimPrefix(s.until(t, "id: "), "id: ")
	if l := s.until(t, "event: "); l != "event: notification" {
		t.Fatalf("event line %q", l)
	}
	data := strings.TrimPrefix(s.until(t, "data: "), "data: ")
	if err := json.Unmarshal([]byte(data), &n); err != nil {
		t.Fatalf("data %q: %v", data, err)
	}
	return id, n
}

func TestHandleStreamsLiveNotificationsPastTheServerTimeoutsAndResumes(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t, func(c *notification.Config) { c.StreamHeartbeat = 200 * time.Millisecond })
	base := serve(t, notificationstream.New(env.Service, env.Service.Verifier(), logging.Discard()))
	userID := events.NewID()
	tok := env.Token(t, userID, false)

	s := connect(t, base, tok, "")
	if s.resp.StatusCode != http.StatusOK || s.resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Fatalf("status %d, content type %q", s.resp.StatusCode, s.resp.Header.Get("Content-Type"))
	}
	s.until(t, ": ready")
	// Stay connected past both server timeouts, heartbeats flowing.
	time.Sleep(3 * serverTimeouts)
	s.until(t, ": ping")
	first := env.Record(t, notificationtest.Running(t, userID, events.NewID()))
	id, n := s.event(t)
	if id != "1" || n.ID != first.InApp.ID {
		t.Fatalf("event id %s, notification %+v; want 1, %s", id, n, first.InApp.ID)
	}
	env.Record(t, notificationtest.Running(t, userID, events.NewID()))
	env.Record(t, notificationtest.Running(t, userID, events.NewID()))

	resumed := connect(t, base, tok, "1")
	for _, want := range []string{"2", "3"} {
		if id, _ := resumed.event(t); id != want {
			t.Fatalf("resumed event id %s, want %s", id, want)
		}
	}
	resumed.until(t, ": ready")
}

func TestHandleRefusesBeforeTheStreamStarts(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t)
	f := notificationstream.New(env.Service, env.Service.Verifier(), logging.Discard())
	userID := events.NewID()
	var e notificationtest.ErrorBody
	if code := notificationtest.Do(t, f, "GET", "/api/v1/notifications/stream", "", nil, &e); code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", code)
	}
	if code := notificationtest.Do(t, f, "GET", "/api/v1/notifications/stream?last_event_id=x", env.Token(t, userID, false), nil, &e); code != http.StatusBadRequest || e.Error.Code != "invalid" {
		t.Fatalf("bad Last-Event-ID: %d %+v", code, e)
	}
	if err := f.Stop(context.Background()); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}
