package notification_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/functions/notification"
	"github.com/cloudphone/cloudphone/functions/notification/notificationtest"
	"github.com/cloudphone/cloudphone/shared/events"
)

// closedPort returns an SMTP_URL where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "smtp://" + addr
}

func TestEmailGoesOutThroughTheSMTPServerOnce(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t)
	ctx := context.Background()
	userID, address := events.NewID(), notificationtest.Address()
	env.Record(t, notificationtest.Registered(t, userID, "dora", address))
	d, err := env.Service.Drain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Emails != 1 {
		t.Fatalf("drained %d emails, want 1", d.Emails)
	}
	if d, _ := env.Service.Drain(ctx); d.Emails != 0 {
		t.Fatalf("a second drain sent %d emails again", d.Emails)
	}
	mails := env.MailTo(t, address)
	if len(mails) != 1 || mails[0].From != "no-reply@cloudphone.test" {
		t.Fatalf("caught %d mails to %s (%+v), want 1 from no-reply@cloudphone.test", len(mails), address, mails)
	}
	emails, err := env.Service.Emails(ctx, userID)
	if err != nil || len(emails) != 1 || emails[0].Status != "sent" || emails[0].Attempts != 1 {
		t.Fatalf("email status: %+v, %v", emails, err)
	}
}

func TestEmailIsRetriedWithBackoffAndDeadAfterTheLastAttempt(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t, func(c *notification.Config) {
		c.SMTPURL = closedPort(t)
		c.EmailMaxAttempts, c.EmailBackoff = 3, time.Minute
	})
	ctx := context.Background()
	userID := events.NewID()
	out := env.Record(t, notificationtest.Registered(t, userID, "erin", notificationtest.Address()))
	if out.InApp == nil {
		t.Fatal("the in-app notification waits for nothing, yet none was made")
	}
	status := func() notification.EmailStatus {
		t.Helper()
		emails, err := env.Service.Emails(ctx, userID)
		if err != nil || len(emails) != 1 {
			t.Fatalf("emails: %+v, %v", emails, err)
		}
		return emails[0]
	}
	steps := []struct {
		advance  time.Duration
		attempts int
		status   string
	}{
		{0, 1, "pending"},
		{30 * time.Second, 1, "pending"}, // the first backoff (1 min) has not passed
		{30 * time.Second, 2, "pending"},
		{time.Minute, 2, "pending"}, // the second backoff is 2 min
		{time.Minute, 3, "dead"},
		{time.Hour, 3, "dead"},
	}
	for i, s := range steps {
		env.Clock.Advance(s.advance)
		if _, err := env.Service.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		got := status()
		if got.Attempts != s.attempts || got.Status != s.status {
			t.Fatalf("step %d: %d attempts, %s; want %d, %s", i, got.Attempts, got.Status, s.attempts, s.status)
		}
	}
	if got := status(); !strings.Contains(got.LastError, "dial") {
		t.Fatalf("the dead letter keeps the last error, got %q", got.LastError)
	}
}

func TestComposedMessageCarriesBothBodiesAndAnEncodedSubject(t *testing.T) {
	t.Parallel()
	msg, err := notification.Compose(notification.Email{
		From: mustAddress(t, "cloudphone <no-reply@cloudphone.test>"), To: "a@example.test",
		Subject: "Grüße, ☎", Text: "plain", HTML: "<p>html</p>", MessageID: "1.x@cloudphone.test", Date: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := string(msg)
	for _, want := range []string{"Subject: =?utf-8?q?", "multipart/alternative", "text/plain; charset=utf-8", "text/html; charset=utf-8", "plain", "<p>html</p>"} {
		if !strings.Contains(s, want) {
			t.Errorf("message lacks %q:\n%s", want, s)
		}
	}
}
