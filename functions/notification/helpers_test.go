package notification_test

import (
	"net/mail"
	"testing"
)

func mustAddress(t *testing.T, s string) *mail.Address {
	t.Helper()
	a, err := mail.ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
