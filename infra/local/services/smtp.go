package services

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/maildrop"
)

// maxMailBytes is the largest message the catcher accepts.
const maxMailBytes = 10 << 20

// SMTPCatcher is a private SMTP server that accepts every message for any
// recipient and keeps it in a folder (package maildrop) instead of sending
// it on: the local platform's mail server when SMTP_URL is not set, and the
// tests'. It is a real SMTP server (github.com/emersion/go-smtp), so the
// platform's mail client talks to it as to any other. Safe for concurrent use.
type SMTPCatcher struct {
	dir      string
	ln       net.Listener
	srv      *smtp.Server
	done     chan struct{}
	received atomic.Int64
}

// StartSMTPCatcher starts the catcher on a free port of 127.0.0.1, keeping
// messages in dir (made when missing; earlier messages stay). It serves
// until Stop; ctx only bounds the start.
func StartSMTPCatcher(ctx context.Context, dir string, log *slog.Logger) (*SMTPCatcher, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("mail dir %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create mail dir: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("smtp catcher: listen: %w", err)
	}
	c := &SMTPCatcher{dir: dir, ln: ln, done: make(chan struct{})}
	c.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &catcherSession{c: c, log: log}, nil
	}))
	c.srv.Domain = "localhost"
	c.srv.MaxMessageBytes = maxMailBytes
	c.srv.MaxRecipients = 100
	c.srv.ReadTimeout = time.Minute
	c.srv.WriteTimeout = time.Minute
	go func() {
		defer close(c.done)
		if err := c.srv.Serve(ln); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			log.Error("smtp catcher stopped", "err", err)
		}
	}()
	log.Info("smtp catcher started", "addr", ln.Addr().String(), "dir", dir)
	return c, nil
}

// URL is the SMTP_URL of the catcher.
func (c *SMTPCatcher) URL() string { return "smtp://" + c.ln.Addr().String() }

// Port is the port the catcher listens on.
func (c *SMTPCatcher) Port() int {
	_, p, _ := net.SplitHostPort(c.ln.Addr().String())
	n, _ := strconv.Atoi(p)
	return n
}

// Dir is the folder the messages are kept in (maildrop.List reads it).
func (c *SMTPCatcher) Dir() string { return c.dir }

// Received is how many messages were caught since the start.
func (c *SMTPCatcher) Received() int64 { return c.received.Load() }

// Stop closes the listener and every open session at once: a message in
// the middle of its DATA is not kept, and its sender retries it elsewhere or
// later, as with any server that goes away.
func (c *SMTPCatcher) Stop(ctx context.Context) error {
	err := c.srv.Close()
	// Serve may not have registered the listener yet, so Close could miss it.
	_ = c.ln.Close()
	select {
	case <-c.done:
	case <-ctx.Done():
		return fmt.Errorf("smtp catcher did not stop: %w", ctx.Err())
	}
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// catcherSession is one SMTP session: any sender, any recipient, no
// authentication (it offers none).
type catcherSession struct {
	c    *SMTPCatcher
	log  *slog.Logger
	from string
	to   []string
}

func (s *catcherSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *catcherSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *catcherSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := maildrop.Message{ID: events.NewID(), From: s.from, To: s.to, ReceivedAt: time.Now().UTC(), Raw: raw}
	if err := maildrop.Save(s.c.dir, m); err != nil {
		s.log.Error("smtp catcher could not keep a message", "err", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "cannot store the message now"}
	}
	s.c.received.Add(1)
	return nil
}

func (s *catcherSession) Reset() { s.from, s.to = "", nil }

func (s *catcherSession) Logout() error { return nil }
