package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudphone/cloudphone/assembly/catalog"
)

const root = "../../.."

func TestEveryCatalogFunctionGetsAMainOfItsOwnPackage(t *testing.T) {
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	out, err := filepath.Rel(abs, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := write(root, out)
	if err != nil {
		t.Fatal(err)
	}
	entries := catalog.Entries()
	if len(dirs) != len(entries) {
		t.Fatalf("%d mains for %d functions", len(dirs), len(entries))
	}
	for _, e := range entries {
		src, err := os.ReadFile(filepath.Join(root, out, e.Spec.Name, "main.go"))
		if err != nil {
			t.Fatal(err)
		}
		fromCatalog := strings.Contains(string(src), "/assembly/catalog\"")
		// Only the console, whose entry is made over every other function's,
		// may link the catalog.
		if fromCatalog != (e.Spec.Name == "web-console") {
			t.Errorf("%s: main takes its entry from the catalog = %v:\n%s", e.Spec.Name, fromCatalog, src)
		}
	}
	login, err := os.ReadFile(filepath.Join(root, out, "auth-login", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(login), `fn "github.com/cloudphone/cloudphone/functions/user/authlogin"`) {
		t.Errorf("auth-login's main does not import its package:\n%s", login)
	}
}

// The per-function mains link assembly/serve and one function package: serve
// must not bring the catalog, and with it every function, back in.
func TestServeLinksNoFunction(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./assembly/serve")
	cmd.Dir = root
	deps, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range strings.Fields(string(deps)) {
		if strings.Contains(d, "/cloudphone/functions/") || strings.HasSuffix(d, "/assembly/catalog") {
			t.Errorf("assembly/serve links %s", d)
		}
	}
}

// A per-function binary links its function and the shared packages, and the
// linker drops the methods nobody calls: auth-login's binary holds no other
// function's code and not the Redis commands it never sends (they were all
// kept while a dependency's reflection disabled that pruning).
func TestOneFunctionsBinaryLinksOnlyWhatItUses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(abs, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The mains must sit inside the module to import it; bin/ is git-ignored.
	tmp, err := os.MkdirTemp(filepath.Join(abs, "bin"), "_mains-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	out, err := filepath.Rel(abs, tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := write(abs, filepath.Join(out, "src")); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(tmp, "auth-login")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./"+filepath.ToSlash(filepath.Join(out, "src", "auth-login")))
	build.Dir = abs
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	nm, err := exec.Command("go", "tool", "nm", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	symbols := string(nm)
	if !strings.Contains(symbols, "cloudphone/functions/user/authlogin.") {
		t.Fatal("the binary does not hold auth-login")
	}
	for _, other := range []string{"cloudphone/functions/billing/", "cloudphone/functions/device/", "cloudphone/functions/user/authregister.", "cloudphone/assembly/catalog."} {
		if strings.Contains(symbols, other) {
			t.Errorf("auth-login's binary links %s", other)
		}
	}
	if strings.Contains(symbols, "go-redis/v9.cmdable.FTCreate") {
		t.Error("auth-login's binary keeps go-redis's FT.CREATE, a command it never sends: unused methods are not pruned")
	}
}
