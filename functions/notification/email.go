package notification

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/shared/db"
)

// Mailer sends email through one SMTP server. Safe for concurrent use: each
// Send opens its own connection.
type Mailer struct {
	addr     string
	host     string
	mode     string // "plain", "starttls" or "tls"
	username string
	password string
}

// NewMailer returns a Mailer for rawURL: smtp://[user:password@]host[:port]
// (port 25, no TLS), smtp+starttls://… (port 587, STARTTLS required) or
// smtps://… (port 465, TLS from the start).
func NewMailer(rawURL string) (*Mailer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", redactURL(rawURL), err)
	}
	m := &Mailer{host: u.Hostname()}
	port := u.Port()
	switch u.Scheme {
	case "smtp":
		m.mode, port = "plain", or(port, "25")
	case "smtp+starttls":
		m.mode, port = "starttls", or(port, "587")
	case "smtps":
		m.mode, port = "tls", or(port, "465")
	default:
		return nil, fmt.Errorf("scheme %q: want smtp, smtp+starttls or smtps", u.Scheme)
	}
	if m.host == "" {
		return nil, errors.New("no host")
	}
	m.addr = net.JoinHostPort(m.host, port)
	if u.User != nil {
		m.username = u.User.Username()
		m.password, _ = u.User.Password()
	}
	return m, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// redactURL drops a URL's password, for errors and logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// Send delivers msg (a complete RFC 5322 message) from from to to. An error
// the server gave is a *smtp.SMTPError; Permanent tells whether retrying
// can help.
func (m *Mailer) Send(ctx context.Context, from, to string, msg []byte) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", m.addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	var c *smtp.Client
	switch m.mode {
	case "tls":
		tc := tls.Client(conn, &tls.Config{ServerName: m.host})
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return fmt.Errorf("tls with %s: %w", m.addr, err)
		}
		c = smtp.NewClient(tc)
	case "starttls":
		if c, err = smtp.NewClientStartTLS(conn, &tls.Config{ServerName: m.host}); err != nil {
			conn.Close()
			return fmt.Errorf("starttls with %s: %w", m.addr, err)
		}
	default:
		c = smtp.NewClient(conn)
	}
	defer c.Close()
	if m.username != "" {
		if err := c.Auth(sasl.NewPlainClient("", m.username, m.password)); err != nil {
			return fmt.Errorf("authenticate at %s: %w", m.addr, err)
		}
	}
	if err := c.SendMail(from, []string{to}, bytes.NewReader(msg)); err != nil {
		return fmt.Errorf("send to %s via %s: %w", to, m.addr, err)
	}
	return c.Quit()
}

// Permanent reports whether err is an SMTP server's permanent refusal (5xx),
// which no retry changes.
func Permanent(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code >= 500
}

// Email is one message as the worker sends it.
type Email struct {
	ID        int64
	From      *mail.Address
	To        string
	Subject   string
	Text      string
	HTML      string
	MessageID string
	Date      time.Time
}

// Compose returns e as a MIME message: multipart/alternative with the text
// and HTML bodies, quoted-printable, the subject encoded for any charset.
func Compose(e Email) ([]byte, error) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	h := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	h("From", e.From.String())
	h("To", (&mail.Address{Address: e.To}).String())
	h("Subject", mime.QEncoding.Encode("utf-8", e.Subject))
	h("Date", e.Date.Format(time.RFC1123Z))
	h("Message-ID", "<"+e.MessageID+">")
	h("MIME-Version", "1.0")
	h("Content-Type", `multipart/alternative; boundary="`+mw.Boundary()+`"`)
	b.WriteString("\r\n")
	for _, part := range []struct{ typ, body string }{{"text/plain", e.Text}, {"text/html", e.HTML}} {
		pw, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.typ + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, err
		}
		qp := quotedprintable.NewWriter(pw)
		if _, err := qp.Write([]byte(part.body)); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// emailAttemptTimeout bounds one SMTP conversation.
const emailAttemptTimeout = 30 * time.Second

// sendDueEmail claims one due email, sends it and records the outcome: sent,
// retried after EmailBackoff × 2^(attempts-1), or dead after the last of
// EmailMaxAttempts attempts or at the server's permanent refusal. The row
// stays locked while it is sent, so no other worker sends it too. It
// reports false when nothing was due (or no server is configured).
func (s *Service) sendDueEmail(ctx context.Context) (bool, error) {
	if s.mailer == nil {
		return false, nil
	}
	found := false
	err := db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		now := s.nowDB()
		var e Email
		var attempts int
		var eventID string
		err := tx.QueryRow(ctx, `
			SELECT id, to_address, subject, text_body, html_body, attempts, event_id FROM email_outbox
			 WHERE status = 'pending' AND next_attempt_at <= $1
			 ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`, now).
			Scan(&e.ID, &e.To, &e.Subject, &e.Text, &e.HTML, &attempts, &eventID)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("claim an email: %w", err)
		}
		found = true
		e.From, e.Date = s.from, now
		e.MessageID = fmt.Sprintf("%d.%s@%s", e.ID, eventID, domainOf(s.from.Address))
		msg, err := Compose(e)
		if err != nil {
			return fmt.Errorf("compose email %d: %w", e.ID, err)
		}
		sctx, cancel := context.WithTimeout(ctx, emailAttemptTimeout)
		sendErr := s.mailer.Send(sctx, s.from.Address, e.To, msg)
		cancel()
		attempts++
		if sendErr == nil {
			_, err = tx.Exec(ctx, `UPDATE email_outbox SET status = 'sent', attempts = $2, sent_at = $3, last_error = '' WHERE id = $1`,
				e.ID, attempts, now)
			return err
		}
		if attempts >= s.cfg.EmailMaxAttempts || Permanent(sendErr) {
			s.log.ErrorContext(ctx, "email given up: dead letter", "email_id", e.ID, "attempts", attempts, "err", sendErr)
			_, err = tx.Exec(ctx, `UPDATE email_outbox SET status = 'dead', attempts = $2, last_error = $3 WHERE id = $1`,
				e.ID, attempts, sendErr.Error())
			return err
		}
		next := now.Add(s.cfg.EmailBackoff << (attempts - 1))
		s.log.WarnContext(ctx, "email failed, will be retried", "email_id", e.ID, "attempts", attempts, "next_attempt_at", next, "err", sendErr)
		_, err = tx.Exec(ctx, `UPDATE email_outbox SET attempts = $2, last_error = $3, next_attempt_at = $4 WHERE id = $1`,
			e.ID, attempts, sendErr.Error(), next)
		return err
	})
	return found, err
}

func domainOf(addr string) string {
	if _, d, ok := strings.Cut(addr, "@"); ok && d != "" {
		return d
	}
	return "cloudphone.local"
}

// EmailStatus is the state of one queued email (tests and operators).
type EmailStatus struct {
	ID        int64  `json:"id"`
	Type      string `json:"type"`
	To        string `json:"to"`
	Status    string `json:"status"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error"`
}

// Emails returns the emails queued for userID, oldest first.
func (s *Service) Emails(ctx context.Context, userID string) ([]EmailStatus, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, type, to_address, status, attempts, last_error FROM email_outbox
		WHERE user_id = $1 ORDER BY id`, userID)
	if err != nil {
		return nil, fmt.Errorf("emails of user %s: %w", userID, err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[EmailStatus])
}
