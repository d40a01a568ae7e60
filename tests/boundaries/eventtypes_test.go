package boundaries

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestEventTypesAreWrittenOnlyInTheirContract fails when an event type is
// written as a string literal outside the contract packages: production code
// writes no literal that starts like one ("cloudphone.<context>."), and no
// file, tests included, writes a type a contract declares. Tests of shared/
// and infra/ are exempt: they exercise the machinery with types of their own
// and may not import a context.
func TestEventTypesAreWrittenOnlyInTheirContract(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	contexts, err := os.ReadDir(filepath.Join(root, "functions"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range contexts {
		if c.IsDir() {
			names = append(names, regexp.QuoteMeta(c.Name()))
		}
	}
	looksLikeType := regexp.MustCompile(`^cloudphone\.(` + strings.Join(names, "|") + `)\.`)

	declared := map[string]string{} // type → contract file
	type literal struct {
		file, value string
		line        int
	}
	var elsewhere []literal
	for _, top := range []string{"functions", "shared", "assembly", "infra", "tests"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			rel = filepath.ToSlash(rel)
			test := strings.HasSuffix(rel, "_test.go")
			if test && (top == "shared" || top == "infra") {
				return nil
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil || !strings.HasPrefix(v, "cloudphone.") {
					return true
				}
				switch {
				case isContract(rel) && !test:
					declared[v] = rel
				case !test && looksLikeType.MatchString(v):
					t.Errorf("%s:%d writes the event type %q: use its contract's constant", rel, fset.Position(lit.Pos()).Line, v)
				default:
					elsewhere = append(elsewhere, literal{rel, v, fset.Position(lit.Pos()).Line})
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(declared) < 20 {
		t.Fatalf("only %d event types found in the contract packages: is the walk rooted at the repository?", len(declared))
	}
	for _, l := range elsewhere {
		if contract, ok := declared[l.value]; ok {
			t.Errorf("%s:%d writes %q, declared in %s: use the constant", l.file, l.line, l.value, contract)
		}
	}
}
