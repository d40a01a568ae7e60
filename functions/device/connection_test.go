package device_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/tests/devicetest"
)

func TestConnectionGivesTheGatewayURLAndAFreshSignedTicket(t *testing.T) {
	t.Parallel()
	env := devicetest.New(t)
	a := env.User(t, "alice")
	d := running(t, env, a)
	c, err := env.Service.Connect(bg, a.Principal, d.ID, "wss://gw.example")
	if err != nil {
		t.Fatal(err)
	}
	if c.ADB != fmt.Sprintf("127.0.0.1:%d", d.ADBPort) || time.Until(c.ExpiresAt) > 5*time.Minute || time.Until(c.ExpiresAt) < 4*time.Minute {
		t.Fatalf("connection = %+v", c)
	}
	if want := "wss://gw.example/api/v1/devices/" + d.ID + "/adb?ticket=" + c.Ticket; c.URL != want {
		t.Fatalf("url = %q, want %q", c.URL, want)
	}
	tk, err := env.Tickets.Verify(c.Ticket, time.Now())
	if err != nil || tk.DeviceID != d.ID || tk.UserID != a.ID || tk.ADB != c.ADB || tk.ID == "" {
		t.Fatalf("ticket = %+v, %v", tk, err)
	}
	again, err := env.Service.Connect(bg, a.Principal, d.ID, "wss://gw.example")
	if err != nil {
		t.Fatal(err)
	}
	if tk2, err := env.Tickets.Verify(again.Ticket, time.Now()); err != nil || tk2.ID == tk.ID {
		t.Fatalf("a second connection got ticket %+v (%v), the first had id %s", tk2, err, tk.ID)
	}
	if _, err := env.Tickets.Verify(c.Ticket, time.Now().Add(6*time.Minute)); err == nil {
		t.Fatal("an expired ticket verified")
	}
	if _, err := env.Tickets.Verify(c.Ticket[:len(c.Ticket)-2]+"AA", time.Now()); err == nil {
		t.Fatal("a forged ticket verified")
	}
}
