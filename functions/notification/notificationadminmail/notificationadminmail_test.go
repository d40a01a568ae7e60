package notificationadminmail_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/cloudphone/cloudphone/functions/notification/notificationadminmail"
	"github.com/cloudphone/cloudphone/functions/notification/notificationtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
)

func TestHandleListsCaughtMailForAdministratorsOnly(t *testing.T) {
	t.Parallel()
	env := notificationtest.New(t)
	f := notificationadminmail.New(env.MailDir, env.Service.Verifier(), logging.Discard())
	address := notificationtest.Address()
	env.Record(t, notificationtest.Registered(t, events.NewID(), "ivy", address))
	if _, err := env.Service.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	admin := env.Token(t, events.NewID(), true)
	var got struct{ Items []notificationadminmail.Mail }
	if code := notificationtest.Do(t, f, "GET", "/api/v1/admin/mail?to="+address, admin, nil, &got); code != http.StatusOK {
		t.Fatalf("list: %d", code)
	}
	if len(got.Items) != 1 {
		t.Fatalf("mails to %s: %d, want 1", address, len(got.Items))
	}
	m := got.Items[0]
	if m.Subject != "Welcome to cloudphone, ivy" || !strings.Contains(m.Text, "Hello ivy") || !strings.Contains(m.HTML, "<h1") ||
		len(m.Envelope.To) != 1 || m.Envelope.To[0] != address {
		t.Fatalf("mail: %+v", m)
	}
	if code := notificationtest.Do(t, f, "GET", "/api/v1/admin/mail", env.Token(t, events.NewID(), false), nil, nil); code != http.StatusForbidden {
		t.Fatalf("a user reads the mail: %d", code)
	}
	none := notificationadminmail.New("", env.Service.Verifier(), logging.Discard())
	if code := notificationtest.Do(t, none, "GET", "/api/v1/admin/mail", admin, nil, nil); code != http.StatusNotFound {
		t.Fatalf("without a catcher: %d", code)
	}
}
