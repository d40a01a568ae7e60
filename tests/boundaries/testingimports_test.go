package boundaries

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// testOnly are the standard packages made for tests: importing one puts its
// flags and helpers into every binary that links the importer.
var testOnly = map[string]bool{"testing": true, "net/http/httptest": true, "testing/fstest": true, "testing/iotest": true}

// TestOnlyTestSupportPackagesImportTestingPackages: outside _test.go files,
// testing and net/http/httptest are imported by test-support packages alone
// (a folder named <something>test, or standinproc, which starts the phone
// stand-in as a test's child process), never by code a function links.
func TestOnlyTestSupportPackagesImportTestingPackages(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	var files int
	for _, top := range []string{"functions", "shared", "assembly", "infra"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			files++
			dir := filepath.Base(filepath.Dir(path))
			if strings.HasSuffix(dir, "test") || dir == "standinproc" {
				return nil
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			for _, imp := range f.Imports {
				if p, _ := strconv.Unquote(imp.Path.Value); testOnly[p] {
					rel, _ := filepath.Rel(root, path)
					t.Errorf("%s imports %s, which only test code may", filepath.ToSlash(rel), p)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files == 0 {
		t.Fatal("no file was checked: is the walk rooted at the repository?")
	}
}
