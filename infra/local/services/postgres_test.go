package services

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// dataDir returns a fresh directory that the postgres OS user can reach
// (t.TempDir's parents are 0700 and owned by whoever runs the tests).
func dataDir(t *testing.T, name string) string {
	t.Helper()
	root := t.TempDir()
	for p := root; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatalf("chmod %s: %v", p, err)
		}
		if filepath.Dir(p) == os.TempDir() {
			break
		}
	}
	return filepath.Join(root, name)
}

func startPostgres(t *testing.T, dir string, opts PostgresOptions) *Postgres {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pg, err := StartPostgres(ctx, dir, opts, nil)
	if err != nil {
		t.Fatalf("StartPostgres(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = pg.Stop(context.Background()) })
	return pg
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func exec1(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func queryString(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func TestPostgresKeepsATableAcrossStopAndStart(t *testing.T) {
	t.Parallel()
	dir := dataDir(t, "pg")

	pg := startPostgres(t, dir, PostgresOptions{Fsync: true})
	if !strings.HasPrefix(pg.URL(), "postgres://postgres@127.0.0.1:") || !strings.HasSuffix(pg.URL(), "/postgres?sslmode=disable") {
		t.Fatalf("URL() = %q", pg.URL())
	}
	conn := connect(t, pg.URL())
	for setting, want := range map[string]string{"fsync": "on", "max_connections": "300", "shared_buffers": "128MB",
		"listen_addresses": "127.0.0.1", "server_encoding": "UTF8"} {
		if got := queryString(t, conn, "SHOW "+setting); got != want {
			t.Errorf("SHOW %s = %q, want %q", setting, got, want)
		}
	}
	exec1(t, conn, "CREATE TABLE kept (v text)")
	exec1(t, conn, "INSERT INTO kept VALUES ('before restart')")
	_ = conn.Close(context.Background())
	if err := pg.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := pgx.Connect(context.Background(), pg.URL()); err == nil {
		t.Fatal("the server still accepts connections after Stop")
	}
	if _, err := os.Stat(filepath.Join(dir, "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatalf("postmaster.pid after a clean stop: %v", err)
	}

	again := startPostgres(t, dir, PostgresOptions{})
	conn = connect(t, again.URL())
	if got := queryString(t, conn, "SELECT v FROM kept"); got != "before restart" {
		t.Fatalf("after restart the table holds %q", got)
	}
	if got := queryString(t, conn, "SHOW fsync"); got != "off" {
		t.Fatalf("SHOW fsync with Fsync false = %q", got)
	}
}

func TestPostgresStartsOverAStalePIDFileAfterACrash(t *testing.T) {
	t.Parallel()
	dir := dataDir(t, "pg")
	pg := startPostgres(t, dir, PostgresOptions{})
	conn := connect(t, pg.URL())
	exec1(t, conn, "CREATE TABLE kept (v int)")
	exec1(t, conn, "INSERT INTO kept VALUES (42)")
	_ = conn.Close(context.Background())

	// Crash: kill the postmaster and its backends without a shutdown.
	killGroup(pg.proc.cmd.Process.Pid)
	<-pg.proc.exited
	// And have the pid in postmaster.pid belong to a live program that is not
	// Postgres, as after a reboot that reused the pid.
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
	pidFile := filepath.Join(dir, "postmaster.pid")
	old, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("a crashed server leaves postmaster.pid: %v", err)
	}
	_, rest, _ := strings.Cut(string(old), "\n")
	if err := os.WriteFile(pidFile, []byte(fmt.Sprintf("%d\n%s", other.Process.Pid, rest)), 0o600); err != nil {
		t.Fatal(err)
	}

	var again *Postgres
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The killed backends may take a moment to leave shared memory.
		again, err = StartPostgres(context.Background(), dir, PostgresOptions{}, nil)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("StartPostgres after a crash: %v", err)
	}
	t.Cleanup(func() { _ = again.Stop(context.Background()) })
	conn = connect(t, again.URL())
	if got := queryString(t, conn, "SELECT v::text FROM kept"); got != "42" {
		t.Fatalf("after the crash the table holds %q", got)
	}
}

func TestPostgresRefusesADataDirAServerIsRunningOn(t *testing.T) {
	t.Parallel()
	dir := dataDir(t, "pg")
	pg := startPostgres(t, dir, PostgresOptions{})

	second, err := StartPostgres(context.Background(), dir, PostgresOptions{}, nil)
	if err == nil {
		_ = second.Stop(context.Background())
		t.Fatal("a second server started on the same data dir")
	}
	if !strings.Contains(err.Error(), "already running") {
		t.Fatalf("error = %v, want it to say a server is already running", err)
	}
	connect(t, pg.URL()) // the first one is untouched
}

func TestPostgresWithALongDirPutsItsSocketInAShortTempDir(t *testing.T) {
	t.Parallel()
	dir := dataDir(t, filepath.Join(strings.Repeat("d", 60), strings.Repeat("e", 60)))
	pg := startPostgres(t, dir, PostgresOptions{})
	if !pg.tmpSocket || !strings.HasPrefix(pg.socketDir, "/tmp/") {
		t.Fatalf("socket dir for %d-byte data dir = %s", len(dir), pg.socketDir)
	}
	socket := filepath.Join(pg.socketDir, fmt.Sprintf(".s.PGSQL.%d", pg.Port()))
	conn := connect(t, fmt.Sprintf("postgres://postgres@/postgres?host=%s&port=%d", pg.socketDir, pg.Port()))
	if got := queryString(t, conn, "SELECT 'over the socket'"); got != "over the socket" {
		t.Fatalf("query over %s = %q", socket, got)
	}
	_ = conn.Close(context.Background())
	if err := pg.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(pg.socketDir); !os.IsNotExist(err) {
		t.Fatalf("temporary socket dir left behind: %v", err)
	}
}

func TestPostgresStopReportsAServerThatHadDied(t *testing.T) {
	t.Parallel()
	pg := startPostgres(t, dataDir(t, "pg"), PostgresOptions{})
	if err := syscall.Kill(-pg.proc.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-pg.proc.exited
	if err := pg.Stop(context.Background()); err == nil {
		t.Fatal("Stop of a server that had died returned nil")
	}
}

func TestFreePortIsBindable(t *testing.T) {
	t.Parallel()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if port <= 0 || port > 65535 {
		t.Fatalf("FreePort() = %d", port)
	}
}
