// Package notificationstream is the notification-stream function: a user's new
// notifications, live, as Server-Sent Events.
package notificationstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
)

// Name is the function's name in the catalog.
const Name = "notification-stream"

// Route is the function's route.
const Route = "GET /api/v1/notifications/stream"

// Routes lists every route, for the catalog.
var Routes = []string{Route}

// LastEventIDParam is the query parameter a client that cannot set the
// Last-Event-ID header may use instead.
const LastEventIDParam = "last_event_id"

// retryMillis is the reconnection delay the stream asks browsers for.
const retryMillis = 3000

// Function answers Route for the caller (notification:read) with
// text/event-stream: first "retry" and, once subscribed (after replaying
// every notification after Last-Event-ID), a ": ready" comment; then one
// event "notification" per notification, id = its seq, data = its JSON; a
// ": ping" comment every heartbeat. Errors before the stream starts are the
// platform's JSON errors (401, 403, 400 for a bad Last-Event-ID, 429 beyond
// the open streams allowed per user, 503 without Redis).
//
// A stream outlives the server's write timeout (write_timeout, 60 s by
// default), which would otherwise cut it: each write extends the
// connection's write deadline with http.ResponseController. The read
// timeout does not matter once the request is read (net/http lifts the read
// deadline for its background read).
type Function struct {
	svc       *notification.Service
	v         *auth.Verifier
	log       *slog.Logger
	heartbeat time.Duration
}

// New returns the function over svc, checking tokens with v. It panics when
// an argument is nil.
func New(svc *notification.Service, v *auth.Verifier, log *slog.Logger) *Function {
	if svc == nil || v == nil || log == nil {
		panic("notificationstream: New needs a notification.Service, an auth.Verifier and a logger")
	}
	return &Function{svc: svc, v: v, log: log, heartbeat: svc.Config().StreamHeartbeat}
}

// Stop ends the process's pub/sub subscription (open streams end).
func (f *Function) Stop(_ context.Context) error { return f.svc.Close() }

// Handle serves one HTTP request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) {
	auth.Require(f.v, f.log)(http.HandlerFunc(f.serve)).ServeHTTP(w, r)
}

func (f *Function) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		apierr.Write(w, r, f.log, apierr.New(apierr.MethodNotAllowed, "the stream is read with GET"))
		return
	}
	p, err := auth.Allow(notification.User, r)
	if err != nil {
		apierr.Write(w, r, f.log, err)
		return
	}
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get(LastEventIDParam)
	}
	s := &sink{w: w, rc: http.NewResponseController(w), deadline: 2*f.heartbeat + 10*time.Second}
	err = f.svc.Stream(r.Context(), p.UserID, last, s)
	switch {
	case err == nil:
	case !s.started:
		apierr.Write(w, r, f.log, err)
	case !errors.Is(err, errWrite):
		f.log.WarnContext(r.Context(), "notification stream ended", "user_id", p.UserID, "err", err)
	}
}

// errWrite marks a failed write to the client (it went away).
var errWrite = errors.New("write to the stream client")

// sink frames Stream's calls as Server-Sent Events.
type sink struct {
	w        http.ResponseWriter
	rc       *http.ResponseController
	deadline time.Duration
	started  bool
}

// start sends the headers.
func (s *sink) start() error {
	if s.started {
		return nil
	}
	s.started = true
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("X-Accel-Buffering", "no")
	s.w.WriteHeader(http.StatusOK)
	return s.write(fmt.Sprintf("retry: %d\n\n", retryMillis))
}

func (s *sink) write(text string) error {
	if err := s.rc.SetWriteDeadline(time.Now().Add(s.deadline)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("%w: %v", errWrite, err)
	}
	if _, err := io.WriteString(s.w, text); err != nil {
		return fmt.Errorf("%w: %v", errWrite, err)
	}
	if err := s.rc.Flush(); err != nil {
		return fmt.Errorf("%w: %v", errWrite, err)
	}
	return nil
}

func (s *sink) Ready() error {
	if err := s.start(); err != nil {
		return err
	}
	return s.write(": ready\n\n")
}

func (s *sink) Send(n notification.Notification) error {
	if err := s.start(); err != nil {
		return err
	}
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	return s.write(fmt.Sprintf("id: %d\nevent: notification\ndata: %s\n\n", n.Seq, b))
}

func (s *sink) Heartbeat() error { return s.write(": ping\n\n") }
