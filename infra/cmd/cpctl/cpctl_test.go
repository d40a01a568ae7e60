package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFlagsComeBeforeOrAfterArgumentsAndEverythingAfterDashDashIsTheCommand(t *testing.T) {
	t.Parallel()
	f := newFlags("shell")
	timeout := f.Int("timeout", 0, "")
	pos, err := f.parse([]string{"p1", "--json", "--timeout", "5", "--", "ls", "-l", "--json"}, 1, -1, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(pos) != 1 || pos[0] != "p1" || !f.json || *timeout != 5 || strings.Join(f.rest, " ") != "ls -l --json" {
		t.Fatalf("pos %q json %v timeout %d rest %q", pos, f.json, *timeout, f.rest)
	}
	if _, err := newFlags("get").parse([]string{"a", "b"}, 1, 1, "PHONE"); exitCode(err) != exitUsage {
		t.Fatalf("two phones for one: %v", err)
	}
	if _, err := newFlags("get").parse([]string{"--nope"}, 0, 1, ""); exitCode(err) != exitUsage {
		t.Fatalf("unknown flag: %v", err)
	}
}

func TestConfigIsWrittenWithMode0600AndReadBack(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "cpctl", "config.json")
	want := config{URL: "https://cloud.example", Username: "alice", AccessToken: "a", RefreshToken: "r"}
	if err := want.save(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config file %v %v", st, err)
	}
	if dir, _ := os.Stat(filepath.Dir(path)); dir.Mode().Perm() != 0o700 {
		t.Fatalf("config dir mode %v", dir.Mode())
	}
	got, err := loadConfig(path)
	if err != nil || got != want {
		t.Fatalf("read back %+v %v", got, err)
	}
	if c, err := loadConfig(filepath.Join(t.TempDir(), "missing.json")); err != nil || c != (config{}) {
		t.Fatalf("a missing file: %+v %v", c, err)
	}
}

func TestConfigPathFollowsFlagThenEnvironment(t *testing.T) {
	t.Parallel()
	env := map[string]string{"HOME": "/home/a"}
	a := &app{env: func(k string) string { return env[k] }}
	for _, c := range []struct {
		flag, cpctl, xdg, want string
	}{
		{"/x.json", "/c.json", "/xdg", "/x.json"},
		{"", "/c.json", "/xdg", "/c.json"},
		{"", "", "/xdg", "/xdg/cpctl/config.json"},
		{"", "", "", "/home/a/.config/cpctl/config.json"},
	} {
		env["CPCTL_CONFIG"], env["XDG_CONFIG_HOME"] = c.cpctl, c.xdg
		if got, err := a.configPath(c.flag); err != nil || got != c.want {
			t.Errorf("%+v: %q %v", c, got, err)
		}
	}
}

func TestPlatformErrorsMapToStableExitCodes(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]int{
		"invalid": exitUsage, "unauthorized": exitAuth, "forbidden": exitAuth, "not_found": exitNotFound,
		"conflict": exitConflict, "insufficient_funds": exitRefused, "quota_exceeded": exitRefused,
		"rate_limited": exitRefused, "unavailable": exitFailure, "internal": exitFailure,
	} {
		if got := exitCode(&apiError{Code: code}); got != want {
			t.Errorf("%s → %d, want %d", code, got, want)
		}
	}
}

func TestWithoutSignInCommandsExitThreeAndUnknownOnesTwo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut,
		env: func(k string) string { return map[string]string{"XDG_CONFIG_HOME": dir}[k] }}
	if code := a.run(context.Background(), []string{"phones", "list"}); code != exitAuth {
		t.Fatalf("phones list without sign-in: %d (%s)", code, errOut.String())
	}
	if code := a.run(context.Background(), []string{"fly"}); code != exitUsage {
		t.Fatalf("unknown command: %d", code)
	}
	if code := a.run(context.Background(), []string{"login", "--url", "ftp://x", "--username", "a", "--password-stdin"}); code != exitUsage {
		t.Fatalf("login with a bad URL: %d", code)
	}
}
