package user

import (
	"regexp"
	"testing"

	"github.com/cloudphone/cloudphone/shared/validate"
)

// TestIDChecksMatchTheirPatterns checks the hand-written checks against the
// regular expressions they stand for.
func TestIDChecksMatchTheirPatterns(t *testing.T) {
	inputs := []string{
		"", "a", "abc", "ABC", "a b", "a\n", "user_name.x-y", "user:name", "é", "K",
		"0f8fad5b-d9cb-469f-a165-70867728950e", "0F8FAD5B-D9CB-469F-A165-70867728950E",
		"0f8fad5b-d9cb-469f-a165-70867728950", "0f8fad5b-d9cb-469f-a165-70867728950e0",
		"0f8fad5bd-9cb-469f-a165-70867728950e", "0f8fad5b-d9cb-469f-a165-70867728950g",
		"{0f8fad5b-d9cb-469f-a165-70867728950e}", "0f8fad5bd9cb469fa16570867728950e",
		"dev:1.2_3-4", "x\x00", string(make([]byte, 64)),
	}
	long := ""
	for range 65 {
		long += "a"
	}
	inputs = append(inputs, long, long[:64])
	checks := []struct {
		name    string
		pattern *regexp.Regexp
		check   func(string) bool
	}{
		{"isUUID", regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`), validate.UUID},
		{"isExternalID", regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`), isExternalID},
		{"isUsername", regexp.MustCompile(`^[a-z0-9_.-]+$`), isUsername},
	}
	for _, c := range checks {
		for _, in := range inputs {
			if got, want := c.check(in), c.pattern.MatchString(in); got != want {
				t.Errorf("%s(%q) = %v, want %v", c.name, in, got, want)
			}
		}
	}
}
