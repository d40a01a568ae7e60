package catalog

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestEveryEntryIsWellFormedAndNoNameOrRouteIsShared(t *testing.T) {
	t.Parallel()
	if err := Check(); err != nil {
		t.Fatal(err)
	}
	for _, e := range Entries() {
		got, ok := Entry(e.Spec.Name)
		if !ok || got.Build == nil || got.Spec.Name != e.Spec.Name {
			t.Errorf("Entry(%q) = %+v, %v", e.Spec.Name, got.Spec, ok)
		}
	}
	if _, ok := Entry("no-such-function"); ok {
		t.Error("Entry found a function the catalog does not have")
	}
}

// TestFunctionNamesAndRoutesAreWrittenOnlyInTheirOwnPackage keeps every
// function declared once: its name and its routes appear as string literals
// in the production code of one package only (its own), so nothing else can
// drift from them.
func TestFunctionNamesAndRoutesAreWrittenOnlyInTheirOwnPackage(t *testing.T) {
	t.Parallel()
	// The same text written for another meaning, each checked by hand.
	elsewhere := map[string][]string{
		"devices":        {"functions/device", "functions/device/deviceruntime", "functions/device/adb/adbtest"}, // a JSON and log key, and the adb command, not the function
		"device-runtime": {"shared/servicetoken"},                                                                // the service-token identity of device-runtime as a caller
		// The edge's default policy names the public routes it limits; shared/
		// cannot import a function package, and CLOUDPHONE_RATE_LIMITS names
		// routes the same way.
		"POST /api/v1/auth/login":    {"shared/ratelimit", "shared/edge"},
		"POST /api/v1/auth/register": {"shared/ratelimit"},
		"POST /api/v1/devices":       {"shared/ratelimit"},
		"POST /api/v1/orders":        {"shared/ratelimit"},
		"POST /api/v1/apps":          {"shared/ratelimit", "shared/edge"},
		// The console shows a part only when the catalog serves its route.
		"GET /api/v1/apps":                    {"functions/console"},
		"GET /api/v1/notifications":           {"functions/console"},
		"GET /api/v1/devices/{id}/screenshot": {"functions/console"},
		"GET /api/v1/admin/mail":              {"functions/console"},
		"POST /api/v1/devices/{id}/apps":      {"functions/console"},
		"GET /api/v1/webhooks":                {"functions/console"},
		"GET /api/v1/admin/dead-letters":      {"functions/console"},
	}
	watched := map[string]bool{}
	for _, s := range All() {
		watched[s.Name] = true
		for _, r := range s.Routes {
			watched[r] = true
		}
	}
	where := map[string][]string{} // literal → package directories
	root := filepath.Join("..", "..")
	for _, top := range []string{"functions", "shared", "assembly", "infra"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			dir := filepath.Dir(path)
			rel, _ := filepath.Rel(root, dir)
			ast.Inspect(f, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if v, err := strconv.Unquote(lit.Value); err == nil && watched[v] && !slices.Contains(where[v], rel) && !slices.Contains(elsewhere[v], filepath.ToSlash(rel)) {
						where[v] = append(where[v], rel)
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for lit := range watched {
		switch dirs := where[lit]; len(dirs) {
		case 0:
			t.Errorf("%q is not written in any production package", lit)
		case 1:
		default:
			t.Errorf("%q is written in %d packages (%v): declare it once, in its function's package, and refer to it", lit, len(dirs), dirs)
		}
	}
}
