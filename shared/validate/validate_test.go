package validate_test

import (
	"testing"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/validate"
)

func TestProblemsListsEveryFaultInOneInvalidError(t *testing.T) {
	t.Parallel()
	var p validate.Problems
	if p.Err() != nil {
		t.Fatal("empty Problems is an error")
	}
	p.Check(true, "a", "fine")
	p.Check(false, "username", "too short")
	p.Add("email", "not an address")
	err := p.Err()
	if !apierr.Is(err, apierr.Invalid) || apierr.As(err).Message != "username: too short; email: not an address" || p.Len() != 2 {
		t.Fatalf("Err = %v", err)
	}
}

func TestNoControlChars(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"alice": true, "Zoë 名前": true, "": true,
		"a\x00b": false, "tab\t": false, "new\nline": false, "del\x7f": false, "c1\u0085": false,
		"bidi\u202e": false, "iso\u2066": false, "bad\xffutf8": false,
	} {
		if got := validate.NoControlChars(s); got != want {
			t.Errorf("NoControlChars(%q) = %v, want %v", s, got, want)
		}
	}
}
