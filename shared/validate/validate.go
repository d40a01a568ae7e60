// Package validate collects what is wrong with a request or a command, field
// by field, into one apierr Invalid. It knows nothing of HTTP, so domain code
// validates with it and httpjson (or an event handler) reports the error.
package validate

import (
	"strings"

	"github.com/cloudphone/cloudphone/shared/apierr"
)

// Problems collects the faults of one request, field by field, so that a caller
// learns all of them at once. The zero value is ready to use.
type Problems struct {
	list []string
}

// Add records that field is wrong because of msg.
func (p *Problems) Add(field, msg string) {
	p.list = append(p.list, field+": "+msg)
}

// Check records msg for field unless ok.
func (p *Problems) Check(ok bool, field, msg string) {
	if !ok {
		p.Add(field, msg)
	}
}

// Len returns the number of problems recorded.
func (p *Problems) Len() int { return len(p.list) }

// Err returns nil when nothing was recorded, otherwise one apierr Invalid whose
// message lists every problem ("username: ...; password: ...").
func (p *Problems) Err() error {
	if len(p.list) == 0 {
		return nil
	}
	return apierr.New(apierr.Invalid, "%s", strings.Join(p.list, "; "))
}

// NoControlChars reports whether s is valid UTF-8 without control characters
// (C0, DEL, C1) or the bidirectional overrides that disguise text.
func NoControlChars(s string) bool {
	for _, r := range s {
		switch {
		case r == '\uFFFD':
			// utf8.RuneError: either invalid UTF-8 or a literal replacement
			// character; neither belongs in a name or an address.
			return false
		case r < 0x20, r >= 0x7f && r <= 0x9f:
			return false
		case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
			return false
		}
	}
	return true
}

// UUID reports whether s is a UUID in its canonical form, 8-4-4-4-12 hex
// digits of either case. (By hand rather than with a regexp: compiling one
// at init would delay every start of the functions that check ids.)
func UUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}
