// Package standinproc runs the phone stand-in (infra/phone-standin, a
// stand-in for a redroid phone, not Android) as a process on a free loopback
// port, for tests and benchmarks that need a phone's ADB endpoint without
// Docker.
package standinproc

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the stand-in once per process into the temporary directory
// (one fixed file per user, rebuilt by each process, so runs do not pile up
// copies).
func binary() (string, error) {
	buildOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
			buildErr = fmt.Errorf("find the module root: %v", err)
			return
		}
		src := filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), "infra", "phone-standin")
		binPath = filepath.Join(os.TempDir(), fmt.Sprintf("cloudphone-phone-standin-%d", os.Getuid()))
		tmp := fmt.Sprintf("%s.%d", binPath, os.Getpid())
		cmd := exec.Command("go", "build", "-o", tmp, ".")
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build the phone stand-in: %v\n%s", err, out)
			return
		}
		buildErr = os.Rename(tmp, binPath)
	})
	return binPath, buildErr
}

// Phone is a running stand-in.
type Phone struct {
	Addr string // its ADB endpoint, 127.0.0.1:PORT
	Root string // the directory holding its files ("/" inside the phone)
	Name string // its name (ro.product.model)
}

// Start runs a stand-in named name (env adds STANDIN_* settings such as
// "STANDIN_SCREEN=480x800") and stops it when the test ends.
func Start(t testing.TB, name string, env ...string) Phone {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), append([]string{"STANDIN_ADDR=127.0.0.1:0", "STANDIN_ROOT=" + root, "STANDIN_NAME=" + name}, env...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := bufio.NewScanner(stderr)
	for lines.Scan() {
		var l struct{ Addr string }
		if json.Unmarshal(lines.Bytes(), &l) == nil && l.Addr != "" {
			go func() { _, _ = io.Copy(io.Discard, stderr) }()
			return Phone{Addr: l.Addr, Root: root, Name: name}
		}
	}
	t.Fatalf("the stand-in exited without listening: %v", lines.Err())
	return Phone{}
}
