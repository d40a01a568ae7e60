package notification_test

import (
	"context"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/functions/notification/notificationtest"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
)

// waitBound fails a test that would otherwise hang; it is not a latency
// requirement.
const waitBound = 20 * time.Second

// chanSink records what Stream writes.
type chanSink struct {
	ready chan struct{}
	got   chan notification.Notification
	beats chan struct{}
}

func newSink() *chanSink {
	return &chanSink{ready: make(chan struct{}), got: make(chan notification.Notification, 100), beats: make(chan struct{}, 100)}
}

func (s *chanSink) Ready() error                           { close(s.ready); return nil }
func (s *chanSink) Send(n notification.Notification) error { s.got <- n; return nil }
func (s *chanSink) Heartbeat() error {
	select {
	case s.beats <- struct{}{}:
	default:
	}
	return nil
}

// open runs a stream of userID until the test ends and waits until it is
// ready; it returns the sink and the stream's result.
func open(t *testing.T, env notificationtest.Env, userID, last string) (*chanSink, context.CancelFunc, chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := newSink()
	done := make(chan error, 1)
	go func() { done <- env.Service.Stream(ctx, userID, last, s) }()
	select {
	case <-s.ready:
	case err := <-done:
		t.Fatalf("stream ended before it was ready: %v", err)
	case <-time.After(waitBound):
		t.Fatal("stream not ready")
	}
	return s, cancel, done
}

func next(t *testing.T, s *chanSink) notification.Notification {
	t.Helper()
	select {
	case n := <-s.got:
		return n
	case <-time.After(waitBound):
		t.Fatal("no notification arrived on the stream")
	}
	return notification.Notification{}
}

func TestStreamReceivesANotificationRecordedAfterItSubscribed(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t)
	userID := events.NewID()
	env.Record(t, notificationtest.Running(t, userID, events.NewID())) // before: not sent without Last-Event-ID
	s, _, _ := open(t, env, userID, "")
	out := env.Record(t, notificationtest.Running(t, userID, events.NewID()))
	n := next(t, s)
	if n.ID != out.InApp.ID || n.Seq != 2 || n.Type != "device.running" {
		t.Fatalf("streamed %+v, want %+v", n, out.InApp)
	}
}

func TestStreamResumesFromLastEventIDWithoutLoss(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t)
	userID := events.NewID()
	for range 4 {
		env.Record(t, notificationtest.Running(t, userID, events.NewID()))
	}
	s, _, _ := open(t, env, userID, "1")
	for want := int64(2); want <= 4; want++ {
		if n := next(t, s); n.Seq != want {
			t.Fatalf("replayed seq %d, want %d", n.Seq, want)
		}
	}
	env.Record(t, notificationtest.Running(t, userID, events.NewID()))
	if n := next(t, s); n.Seq != 5 {
		t.Fatalf("live seq %d, want 5", n.Seq)
	}
	if _, err := env.Service.List(context.Background(), userID, notification.ListQuery{}); err != nil {
		t.Fatal(err)
	}
	err := env.Service.Stream(context.Background(), userID, "not-a-number", newSink())
	if !apierr.Is(err, apierr.Invalid) {
		t.Fatalf("bad Last-Event-ID: err = %v, want invalid", err)
	}
}

func TestStreamCatchesUpFromTheDatabaseWhenAPublishWasLost(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t)
	// A second Service on the same database publishing on other channels
	// stands for a process that committed a notification and died before
	// publishing it.
	cfg := env.Config
	cfg.RedisPrefix += "elsewhere:"
	lost, err := notification.Open(env.Pool, env.Redis, cfg, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	userID := events.NewID()
	s, _, _ := open(t, env, userID, "")
	if _, err := lost.Record(context.Background(), notificationtest.Running(t, userID, events.NewID())); err != nil {
		t.Fatal(err)
	}
	if n := next(t, s); n.Seq != 1 {
		t.Fatalf("caught up seq %d, want 1", n.Seq)
	}
	env.Record(t, notificationtest.Running(t, userID, events.NewID()))
	if n := next(t, s); n.Seq != 2 {
		t.Fatalf("live seq %d, want 2", n.Seq)
	}
}

func TestStreamsPerUserAreLimited(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t) // StreamsPerUser 2
	userID := events.NewID()
	_, cancel1, done1 := open(t, env, userID, "")
	open(t, env, userID, "")
	err := env.Service.Stream(context.Background(), userID, "", newSink())
	if !apierr.Is(err, apierr.RateLimited) {
		t.Fatalf("third stream: err = %v, want rate_limited", err)
	}
	open(t, env, events.NewID(), "") // another user is not limited by this one
	cancel1()
	if err := <-done1; err != nil {
		t.Fatalf("a stream ended by its client returns %v", err)
	}
	open(t, env, userID, "") // the slot is free again
}
