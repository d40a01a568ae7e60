package main

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/infra/local/services"
)

func TestMain(m *testing.M) {
	services.RunS3Gateway()
	os.Exit(m.Run())
}

// environ returns the process environment without the keys in drop.
func environ(drop ...string) []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains(drop, k)
	})
}

// reachable reports whether something accepts TCP connections at rawURL's host.
func reachable(t *testing.T, rawURL string) bool {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("parse %q: %v", rawURL, err)
	}
	c, err := net.DialTimeout("tcp", u.Host, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

func TestDevenvServesTheCommandAndPassesOnItsExitCode(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil { // the postgres user must reach the data dir
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(root), 0o755); err != nil {
		t.Fatal(err)
	}
	seen := filepath.Join(root, "seen")
	script := `pg_isready -q -d "$DATABASE_URL" || exit 90
test -n "$S3_ACCESS_KEY_ID" -a -n "$S3_SECRET_ACCESS_KEY" -a -n "$S3_BUCKET" -a -n "$S3_REGION" || exit 91
test -d "$CLOUDPHONE_MAIL_DIR" || exit 92
printf '%s\n%s\n%s\n%s\n' "$DATABASE_URL" "$REDIS_URL" "$S3_ENDPOINT" "$SMTP_URL" > "$SEEN"
exit 3`

	code := run([]string{"-dir", filepath.Join(root, "data"), "--", "sh", "-c", script},
		append(environ("DATABASE_URL", "REDIS_URL", "S3_ENDPOINT", "SMTP_URL", "CLOUDPHONE_MAIL_DIR"), "SEEN="+seen))
	if code != 3 {
		t.Fatalf("exit code = %d, want the command's 3", code)
	}
	b, err := os.ReadFile(seen)
	if err != nil {
		t.Fatalf("the command did not run: %v", err)
	}
	urls := strings.Fields(string(b))
	if len(urls) != 4 || !strings.HasPrefix(urls[0], "postgres://") || !strings.HasPrefix(urls[1], "redis://") ||
		!strings.HasPrefix(urls[2], "http://127.0.0.1:") || !strings.HasPrefix(urls[3], "smtp://") {
		t.Fatalf("the command saw DATABASE_URL, REDIS_URL, S3_ENDPOINT, SMTP_URL = %q", urls)
	}
	for _, u := range urls {
		if reachable(t, u) {
			t.Errorf("%s still accepts connections after devenv returned", u)
		}
	}
}

func TestDevenvStartsNothingWhenTheURLsAreGiven(t *testing.T) {
	t.Parallel()
	seen := filepath.Join(t.TempDir(), "seen")
	env := append(environ("DATABASE_URL", "REDIS_URL", "S3_ENDPOINT", "SMTP_URL"),
		"DATABASE_URL=postgres://given/db", "REDIS_URL=redis://given/0", "S3_ENDPOINT=http://given:9000", "SMTP_URL=smtp://given:25", "SEEN="+seen)

	code := run([]string{"-dir", filepath.Join(t.TempDir(), "unused"), "--", "sh", "-c",
		`printf '%s %s %s %s' "$DATABASE_URL" "$REDIS_URL" "$S3_ENDPOINT" "$SMTP_URL" > "$SEEN"`}, env)
	if code != 0 {
		t.Fatalf("exit code = %d", code)
	}
	if b, _ := os.ReadFile(seen); string(b) != "postgres://given/db redis://given/0 http://given:9000 smtp://given:25" {
		t.Fatalf("the command saw %q", b)
	}
}

func TestDevenvWithoutACommandIsAUsageError(t *testing.T) {
	t.Parallel()
	if code := run(nil, nil); code != 2 {
		t.Fatalf("exit code = %d, want 2", code)
	}
}

func TestDevenvReports127ForAMissingCommand(t *testing.T) {
	t.Parallel()
	env := []string{"DATABASE_URL=postgres://given/db", "REDIS_URL=redis://given/0", "S3_ENDPOINT=http://given:9000", "SMTP_URL=smtp://given:25"}
	if code := run([]string{"--", "/nonexistent/command"}, env); code != 127 {
		t.Fatalf("exit code = %d, want 127", code)
	}
}
