package catalog

import (
	"encoding/json"
	"testing"

	"github.com/cloudphone/cloudphone/shared/events"
)

func TestEveryRoutedEventTypeIsCataloguedAndProduced(t *testing.T) {
	t.Parallel()
	for _, s := range All() {
		for _, typ := range append(append(append([]string{}, s.Consumes...), s.Emits...), s.Replies...) {
			if _, ok := EventOf(typ); !ok {
				t.Errorf("%s uses %s, which the event catalog does not list", s.Name, typ)
			}
		}
	}
	contexts := map[string]bool{}
	for _, s := range All() {
		contexts[s.Context] = true
	}
	seen := map[string]bool{}
	for _, e := range Events() {
		if seen[e.Type] {
			t.Errorf("%s is listed twice", e.Type)
		}
		seen[e.Type] = true
		switch produced := len(Producers(e.Type)) > 0; {
		case !produced && e.Producer == "":
			t.Errorf("no function produces %s and no other context is named as its producer", e.Type)
		case e.Producer != "" && !contexts[e.Producer]:
			t.Errorf("%s: producer %q is not a context", e.Type, e.Producer)
		case produced && e.Producer != "":
			t.Errorf("%s is produced by %v: drop its Producer %q", e.Type, Producers(e.Type), e.Producer)
		}
		b, err := json.Marshal(e.Payload)
		if err != nil || len(b) > events.MaxDataBytes || b[0] != '{' {
			t.Errorf("%s: payload %T does not encode as a small JSON object: %v", e.Type, e.Payload, err)
		}
	}
}
