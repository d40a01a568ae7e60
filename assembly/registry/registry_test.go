package registry

import (
	"testing"

	"github.com/cloudphone/cloudphone/assembly/catalog"
)

func TestEveryCatalogFunctionHasABuilderAndNoBuilderIsOrphaned(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, e := range Entries() {
		if e.Build == nil {
			t.Errorf("%s has no builder", e.Spec.Name)
		}
		seen[e.Spec.Name] = true
	}
	for name := range builders {
		if _, ok := catalog.ByName(name); !ok {
			t.Errorf("builder %s names no catalog function", name)
		}
	}
	if len(seen) != len(catalog.All()) {
		t.Errorf("entries cover %d of %d catalog functions", len(seen), len(catalog.All()))
	}
	if _, ok := Entry("no-such-function"); ok {
		t.Error("Entry found a function the catalog does not have")
	}
}
