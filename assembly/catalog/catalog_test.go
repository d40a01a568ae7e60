package catalog_test

import (
	"slices"
	"testing"

	"github.com/cloudphone/cloudphone/assembly/catalog"
)

func TestCatalogNamesAreUniqueAndFoundByName(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, s := range catalog.All() {
		if seen[s.Name] {
			t.Errorf("%s listed twice", s.Name)
		}
		seen[s.Name] = true
		got, ok := catalog.ByName(s.Name)
		if !ok || got.Name != s.Name || got.Context != s.Context {
			t.Errorf("ByName(%q) = %+v, %v", s.Name, got, ok)
		}
	}
	if _, ok := catalog.ByName("no-such-function"); ok {
		t.Error("ByName found a function that does not exist")
	}
	if !seen[catalog.DeadLetter] {
		t.Errorf("the dead-letter sink %s is not in the catalog", catalog.DeadLetter)
	}
}

func TestAllReturnsACopy(t *testing.T) {
	t.Parallel()
	a := catalog.All()
	a[0].Name = "changed"
	a[0].Routes[0] = "changed"
	b := catalog.All()
	if b[0].Name == "changed" || b[0].Routes[0] == "changed" {
		t.Fatal("changing the result of All changed the catalog")
	}
}

func TestBundlesServeEveryFunctionOnce(t *testing.T) {
	t.Parallel()
	var served []string
	for bundle, specs := range catalog.Bundles() {
		for _, s := range specs {
			if catalog.BundleOf(s) != bundle {
				t.Errorf("%s is in bundle %s, BundleOf says %s", s.Name, bundle, catalog.BundleOf(s))
			}
			if s.MinScale > 0 && len(specs) != 1 {
				t.Errorf("long-running %s shares bundle %s", s.Name, bundle)
			}
			served = append(served, s.Name)
		}
	}
	var all []string
	for _, s := range catalog.All() {
		all = append(all, s.Name)
	}
	slices.Sort(served)
	slices.Sort(all)
	if !slices.Equal(served, all) {
		t.Fatalf("bundles serve %v, catalog has %v", served, all)
	}
}
