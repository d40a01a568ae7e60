package logtest_test

import (
	"testing"

	"github.com/cloudphone/cloudphone/shared/logging/logtest"
)

func TestDuplicateKeyFindsARepeatedKeyAtAnyDepth(t *testing.T) {
	for doc, dup := range map[string]bool{
		`{"a":1,"b":2}`:                     false,
		`{"a":1,"a":2}`:                     true,
		`{"g":{"a":1},"h":{"a":1}}`:         false,
		`{"g":{"a":1,"a":1}}`:               true,
		`{"l":[{"a":1},{"a":1,"b":[1,1]}]}`: false,
		`{"l":[{"a":1,"a":2}]}`:             true,
	} {
		if err := logtest.DuplicateKey([]byte(doc)); (err != nil) != dup {
			t.Errorf("%s: %v, want duplicate %v", doc, err, dup)
		}
	}
}
