package services

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A private Redis or Postgres that dies (killed, not stopped) is restarted
// on the same port with its data, so the platform's clients reconnect to
// the same URL within seconds; Stop then stops the restarted server.
func TestAKeptRedisThatDiesIsRestartedOnTheSamePortWithItsData(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("this test needs redis-server on PATH: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rs, err := StartRedis(ctx, t.TempDir(), RedisOptions{Restart: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Stop(context.Background()) })
	c := redisClient(t, rs.URL())
	if err := c.Set(ctx, "kept", "yes", 0).Err(); err != nil {
		t.Fatal(err)
	}
	first := rs.keep.current()
	killed := time.Now()
	killGroup(first.cmd.Process.Pid)
	<-first.exited
	for {
		if v, err := c.Get(ctx, "kept").Result(); err == nil && v == "yes" {
			break
		}
		if time.Since(killed) > 15*time.Second {
			t.Fatal("redis was not back with its data on the same URL 15 s after it died")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("redis answered again %s after it was killed", time.Since(killed).Round(time.Millisecond))
	for rs.keep.current() == first { // the keeper records the process right after it answers
		if time.Since(killed) > 20*time.Second {
			t.Fatal("the keeper never recorded the new process")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := rs.Stop(ctx); err != nil {
		t.Fatalf("Stop of the restarted server: %v", err)
	}
	if rs.keep.current().running() {
		t.Fatal("the restarted server still runs after Stop")
	}
}

func TestAKeptPostgresThatDiesIsRestartedOnTheSamePortWithItsData(t *testing.T) {
	t.Parallel()
	pg := startPostgres(t, dataDir(t, "pg"), PostgresOptions{Restart: true})
	conn := connect(t, pg.URL())
	exec1(t, conn, "CREATE TABLE kept (v int)")
	exec1(t, conn, "INSERT INTO kept VALUES (7)")
	_ = conn.Close(context.Background())

	first := pg.keep.current()
	killed := time.Now()
	killGroup(first.cmd.Process.Pid)
	<-first.exited
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := pgx.Connect(ctx, pg.URL())
		if err == nil {
			var v int
			err = c.QueryRow(ctx, "SELECT v FROM kept").Scan(&v)
			_ = c.Close(context.Background())
			cancel()
			if err == nil && v == 7 {
				break
			}
		} else {
			cancel()
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("postgres was not back with its data on the same URL 30 s after it died: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("postgres answered again %s after it was killed", time.Since(killed).Round(time.Millisecond))
	if err := pg.Stop(context.Background()); err != nil {
		t.Fatalf("Stop of the restarted server: %v", err)
	}
}
