// Package manifests_test checks the committed deployment descriptors without
// a cluster: they equal what the catalog renders, Knative Services pass the
// Serving webhook's own defaulting and validation, Eventing objects (Broker,
// Triggers, PingSources, EventPolicies) pass Eventing's own defaulting and
// validation plus the project's routing rules, and
// stack.yml is a strict, valid OpenFaaS stack within the CE limits.
package manifests_test

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cloudphone/cloudphone/assembly/catalog"
	"github.com/cloudphone/cloudphone/infra/manifests"
)

// repo is what the tests read: the repository root and the committed
// generated files, by path relative to the root.
type repo struct {
	root  string
	files map[string][]byte
}

func setup(t *testing.T) repo {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found at %s: %v", root, err)
	}
	r := repo{root: root, files: map[string][]byte{}}
	for _, dir := range []string{manifests.KnativeDir, manifests.TriggerDir} {
		paths, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(dir), "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			r.read(t, dir+"/"+filepath.Base(p))
		}
	}
	r.read(t, manifests.StackFile)
	return r
}

func (r repo) read(t *testing.T, rel string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.root, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatalf("read %s: %v (run `make manifests`)", rel, err)
	}
	r.files[rel] = b
}

// under returns the committed files directly in dir, sorted by path.
func (r repo) under(dir string) []string {
	var out []string
	for p := range r.files {
		if strings.HasPrefix(p, dir+"/") {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// services returns the committed Knative Services, sorted by path (the
// service accounts sit beside them).
func (r repo) services() []string {
	var out []string
	for _, p := range r.under(manifests.KnativeDir) {
		if kind(r.files[p]) == "Service" {
			out = append(out, p)
		}
	}
	return out
}

// kind reads the kind of a YAML manifest without decoding the rest.
func kind(b []byte) string {
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "kind: "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func rendered(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := manifests.Render(catalog.All(), manifests.Options{Source: "../.."})
	if err != nil {
		t.Fatalf("render the catalog: %v", err)
	}
	return files
}
