package notification_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/functions/notification/notificationtest"
	"github.com/cloudphone/cloudphone/shared/events"
)

// overlapServer is an SMTP server that holds each message until another
// conversation is open beside it (or a second passes), and remembers how
// many were open at once at most.
type overlapServer struct {
	mu       sync.Mutex
	open     int
	most     int
	received int
	another  chan struct{} // closed once two conversations were open at once
}

func (o *overlapServer) session() smtp.Session { return &overlapSession{o: o} }

type overlapSession struct{ o *overlapServer }

func (s *overlapSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *overlapSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *overlapSession) Reset()                               {}
func (s *overlapSession) Logout() error                        { return nil }

func (s *overlapSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	o := s.o
	o.mu.Lock()
	o.open++
	o.received++
	o.most = max(o.most, o.open)
	if o.open == 2 {
		select {
		case <-o.another:
		default:
			close(o.another)
		}
	}
	o.mu.Unlock()
	select {
	case <-o.another:
	case <-time.After(time.Second):
	}
	o.mu.Lock()
	o.open--
	o.mu.Unlock()
	return nil
}

func TestDrainSendsABacklogOfEmailsSeveralAtATime(t *testing.T) {
	t.Parallel()
	o := &overlapServer{another: make(chan struct{})}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return o.session(), nil }))
	srv.Domain = "localhost"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	env := notificationtest.New(t, func(c *notification.Config) { c.SMTPURL = "smtp://" + ln.Addr().String() })
	const backlog = 6
	for i := range backlog {
		env.Record(t, notificationtest.Registered(t, events.NewID(), "user"+string(rune('a'+i)), notificationtest.Address()))
	}
	d, err := env.Service.Drain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d.Emails != backlog {
		t.Fatalf("drained %d emails, want %d", d.Emails, backlog)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.received != backlog {
		t.Errorf("the server received %d messages, want %d", o.received, backlog)
	}
	if o.most < 2 {
		t.Errorf("at most %d conversation was open at once: the backlog went out one email at a time", o.most)
	}
}
