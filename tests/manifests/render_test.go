package manifests_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/infra/manifests"
	"github.com/cloudphone/cloudphone/shared/function"
)

func TestCommittedManifestsEqualRenderedCatalog(t *testing.T) {
	t.Parallel()
	r := setup(t)
	diffs, err := manifests.Diff(r.root, rendered(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Fatalf("committed manifests differ from assembly/catalog; run `make manifests`:\n  %s", strings.Join(diffs, "\n  "))
	}
}

func TestEveryCommittedManifestIsGenerated(t *testing.T) {
	t.Parallel()
	r := setup(t)
	files := rendered(t)
	for rel, b := range r.files {
		if !manifests.IsGenerated(b) {
			t.Errorf("%s has no generated marker; hand-written files do not belong in %s or %s", rel, manifests.KnativeDir, manifests.TriggerDir)
		}
		if _, ok := files[rel]; !ok {
			t.Errorf("%s is not rendered from the catalog; run `make manifests`", rel)
		}
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	t.Parallel()
	a, b := rendered(t), rendered(t)
	if len(a) != len(b) {
		t.Fatalf("two renders gave %d and %d files", len(a), len(b))
	}
	for p := range a {
		if !bytes.Equal(a[p], b[p]) {
			t.Errorf("%s differs between two renders", p)
		}
	}
}

func TestRenderRefusesAnInvalidCatalog(t *testing.T) {
	t.Parallel()
	base := catalog.All()
	many := append([]function.Spec(nil), base...)
	for _, c := range []string{"c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10", "c11", "c12", "c13", "c14"} {
		many = append(many, function.Spec{Name: "fn-" + c, Context: "ctx" + c, Kind: function.KindHTTP, Routes: []string{"GET /x"}})
	}
	cases := []struct {
		name  string
		specs []function.Spec
		want  string
	}{
		{"more than 15 OpenFaaS functions", many, "more than the 15 allowed"},
		{"reply loop", with(base, "user-outbox-redrive", func(s *function.Spec) { s.Replies = s.Consumes }), "loop"},
		{"no dead-letter sink", without(base, catalog.DeadLetter), "dead-letter sink"},
		{"name not DNS-1035", with(base, "auth-login", func(s *function.Spec) { s.Name = "1auth" }), "DNS-1035"},
		{"duplicate name", append(append([]function.Spec(nil), base...), base[0]), "listed twice"},
		{"name of a service account's file", with(base, "auth-login", func(s *function.Spec) { s.Name = "serviceaccount-user" }), "service account"},
		{"bad schedule", with(base, "user-outbox-redrive", func(s *function.Spec) { s.Schedule = "*/5 * * *" }), "want 5 fields"},
		{"event function without types", with(base, "user-outbox-redrive", func(s *function.Spec) { s.Consumes = nil; s.Schedule = "" }), "at least one type"},
		{"timeout over Knative's cap", with(base, "auth-login", func(s *function.Spec) { s.TimeoutSeconds = 601 }), "outside 0..600"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := manifests.Render(tc.specs, manifests.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Render error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestWriteReplacesAndDeletesOnlyGeneratedFiles(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	files := rendered(t)
	mustWrite := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite("triggers/old--gone.yaml", manifests.Marker+"\nkind: Trigger\n")
	mustWrite("triggers/hand-written.yaml", "kind: Trigger\n")
	mustWrite("infra/knative/auth-login.yaml", manifests.Marker+"\nold: true\n")

	diffs, err := manifests.Diff(root, files)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(diffs, "\n")
	for _, want := range []string{"stale: triggers/old--gone.yaml", "differs: infra/knative/auth-login.yaml", "missing: stack.yml"} {
		if !strings.Contains(joined, want) {
			t.Errorf("Diff misses %q in:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "hand-written") {
		t.Errorf("Diff reports a hand-written file:\n%s", joined)
	}

	if _, err := manifests.Write(root, files); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "triggers", "old--gone.yaml")); !os.IsNotExist(err) {
		t.Errorf("stale generated file survived Write: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "triggers", "hand-written.yaml")); err != nil {
		t.Errorf("hand-written file was removed: %v", err)
	}
	if diffs, err := manifests.Diff(root, files); err != nil || len(diffs) > 0 {
		t.Fatalf("after Write, Diff = %v, %v; want nothing", diffs, err)
	}
}

func with(specs []function.Spec, name string, change func(*function.Spec)) []function.Spec {
	out := make([]function.Spec, len(specs))
	copy(out, specs)
	for i := range out {
		if out[i].Name == name {
			change(&out[i])
		}
	}
	return out
}

func without(specs []function.Spec, name string) []function.Spec {
	var out []function.Spec
	for _, s := range specs {
		if s.Name != name {
			out = append(out, s)
		}
	}
	return out
}
