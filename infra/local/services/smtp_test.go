package services

import (
	"context"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/cloudphone/cloudphone/shared/maildrop"
)

func TestSMTPCatcherKeepsEveryMessageItAccepts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := StartSMTPCatcher(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := "From: a@example.test\r\nTo: b@example.test\r\nSubject: hello\r\n\r\nbody\r\n"
	addr := strings.TrimPrefix(c.URL(), "smtp://")
	send := func(to ...string) error {
		cl, err := smtp.Dial(addr)
		if err != nil {
			return err
		}
		defer cl.Close()
		return cl.SendMail("a@example.test", to, strings.NewReader(msg))
	}
	if err := send("b@example.test", "c@example.test"); err != nil {
		t.Fatalf("send: %v", err)
	}
	if c.Received() != 1 {
		t.Fatalf("received %d, want 1", c.Received())
	}
	got, err := maildrop.List(dir, 0)
	if err != nil || len(got) != 1 {
		t.Fatalf("kept %d messages (%v), want 1", len(got), err)
	}
	p, err := maildrop.Parse(got[0].Raw)
	if err != nil || p.Subject != "hello" || strings.TrimSpace(p.Text) != "body" || got[0].From != "a@example.test" || len(got[0].To) != 2 {
		t.Fatalf("kept %+v / %+v (%v)", got[0], p, err)
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := send("b@example.test"); err == nil {
		t.Fatal("the catcher still accepts mail after Stop")
	}
}
