// Package boundaries checks the rules the layout stands on, for production
// and test files alike:
//   - a context (functions/<context>/...) imports no other context but its
//     event contract (functions/<context>/<context>events), and a contract
//     imports nothing of functions/;
//   - an event type is written as a literal in its contract package only;
//   - shared/ imports nothing of functions/, assembly/, infra/ or tests/;
//   - functions/ imports nothing of assembly/, infra/ or tests/, but for the
//     test harnesses its test files use (devicetest, standinimage).
//
// Where the compiler can keep a boundary itself it does: each context's
// internal/wiring can be imported by that context alone.
package boundaries

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/cloudphone/cloudphone/"

// harnesses are the packages outside functions/ that a context's test files
// may import: devicetest composes the device context with the user context it
// calls; standinimage builds the phone stand-in image device-runtime's tests
// run; services starts the S3-compatible store the app context's tests use.
var harnesses = map[string]string{
	"tests/devicetest":                 "device",
	"infra/phone-standin/standinimage": "device",
	// The S3-compatible store runs as a child of the test binary itself, so
	// the app context's upload test hooks its TestMain.
	"infra/local/services": "app",
}

func TestContextsImportNoOtherContextAndSharedImportsNoFunction(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	var checked int
	for _, top := range []string{"functions", "shared"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			rel = filepath.ToSlash(rel)
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				target, ok := strings.CutPrefix(p, module)
				if !ok {
					continue
				}
				checked++
				if why := forbidden(rel, target); why != "" {
					t.Errorf("%s imports %s: %s", rel, target, why)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if checked == 0 {
		t.Fatal("no import of the module was checked: is the walk rooted at the repository?")
	}
}

func TestTheRulesRefuseWhatTheyShould(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, file, target string
		refused            bool
	}{
		{"a context imports its own packages", "functions/device/devices/devices.go", "functions/device", false},
		{"a context imports another context", "functions/billing/saga.go", "functions/user", true},
		{"a context's test-support imports another context", "functions/device/devicetest/devicetest.go", "functions/user/usertest", true},
		{"a context imports the composition root", "functions/user/user.go", "assembly/catalog", true},
		{"shared imports a context", "shared/edge/edge.go", "functions/user", true},
		{"shared imports the composition root", "shared/function/entry.go", "assembly/host", true},
		{"shared imports shared", "shared/function/entry.go", "shared/process", false},
		{"a context's test uses its harness", "functions/device/lifecycle_test.go", "tests/devicetest", false},
		{"a context's code uses a harness", "functions/device/device.go", "tests/devicetest", true},
		{"another context's test uses the device harness", "functions/billing/saga_test.go", "tests/devicetest", true},
		{"a context imports another context's contract", "functions/notification/kind.go", "functions/device/deviceevents", false},
		{"a context's test imports another context's contract", "functions/billing/saga_test.go", "functions/user/userevents", false},
		{"a context imports another context's domain", "functions/notification/kind.go", "functions/device", true},
		{"a context imports another context's function", "functions/billing/billingorders/billingorders.go", "functions/user/authlogin", true},
		{"a contract imports its context", "functions/user/userevents/userevents.go", "functions/user", true},
		{"a contract imports another contract", "functions/billing/billingevents/billingevents.go", "functions/user/userevents", true},
		{"a contract's external test imports the contract", "functions/user/userevents/userevents_test.go", "functions/user/userevents", false},
		{"a contract imports shared", "functions/user/userevents/userevents.go", "shared/validate", false},
		{"a context's test-support imports another context", "functions/user/usertest/usertest.go", "functions/device/devices", true},
	}
	for _, c := range cases {
		if got := forbidden(c.file, c.target) != ""; got != c.refused {
			t.Errorf("%s: refused = %v, want %v", c.name, got, c.refused)
		}
	}
}

// forbidden says why file (a path from the repository root) may not import
// target (a package path below the module), or "" when it may.
func forbidden(file, target string) string {
	top, _, _ := strings.Cut(file, "/")
	switch top {
	case "shared":
		for _, p := range []string{"functions/", "assembly/", "infra/", "tests/"} {
			if strings.HasPrefix(target+"/", p) {
				return "shared/ serves every context and imports none of them"
			}
		}
	case "functions":
		from := contextOf(file)
		switch {
		case isContract(file) && strings.HasPrefix(target, "functions/") && path.Dir(file) != target:
			return "an event contract imports nothing of functions/, so any context may import it"
		case strings.HasPrefix(target, "functions/"):
			if to := contextOf(target); to != from && !isContract(target) {
				return "contexts never import each other (import the producer's event contract, or call its API)"
			}
		case harnesses[target] != "":
			if harnesses[target] != from || !strings.HasSuffix(file, "_test.go") {
				return "only a context's test files may use its test harness"
			}
		case strings.HasPrefix(target, "assembly/"), strings.HasPrefix(target, "infra/"), strings.HasPrefix(target, "tests/"):
			return "a context does not know how it is assembled, deployed or tested from outside"
		}
	}
	return ""
}

// isContract reports whether path (a file or a package under functions/) is
// in a context's event contract package, functions/<context>/<context>events.
func isContract(path string) bool {
	parts := strings.Split(path, "/")
	return len(parts) >= 3 && parts[0] == "functions" && parts[2] == parts[1]+"events"
}

// contextOf returns the context of a path under functions/.
func contextOf(path string) string {
	parts := strings.Split(path, "/")
	if len(parts) < 2 {
		return ""
	}
	return parts[1]
}
