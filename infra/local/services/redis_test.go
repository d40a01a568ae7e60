package services

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", url, err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRedisServerKeepsAKeyAcrossStopAndStart(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("this test needs redis-server on PATH: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()

	rs, err := StartRedis(ctx, dir, RedisOptions{}, nil)
	if err != nil {
		t.Fatalf("StartRedis: %v", err)
	}
	t.Cleanup(func() { _ = rs.Stop(context.Background()) })
	if rs.Embedded() {
		t.Fatal("Embedded() with redis-server on PATH")
	}
	if err := redisClient(t, rs.URL()).Set(ctx, "kept", "before restart", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if err := rs.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := redisClient(t, rs.URL()).Ping(ctx).Err(); err == nil {
		t.Fatal("redis still answers after Stop")
	}

	again, err := StartRedis(ctx, dir, RedisOptions{}, nil)
	if err != nil {
		t.Fatalf("StartRedis again: %v", err)
	}
	t.Cleanup(func() { _ = again.Stop(context.Background()) })
	got, err := redisClient(t, again.URL()).Get(ctx, "kept").Result()
	if err != nil || got != "before restart" {
		t.Fatalf("GET after restart = %q, %v", got, err)
	}
}

func TestRedisFallsBackToEmbeddedWithoutTheBinary(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	noBinary := func(string) (string, error) { return "", exec.ErrNotFound }

	rs, err := StartRedis(ctx, t.TempDir(), RedisOptions{LookPath: noBinary}, nil)
	if err != nil {
		t.Fatalf("StartRedis: %v", err)
	}
	t.Cleanup(func() { _ = rs.Stop(context.Background()) })
	if !rs.Embedded() {
		t.Fatal("Embedded() = false without a redis-server binary")
	}
	c := redisClient(t, rs.URL())
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET on embedded redis: %v", err)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET on embedded redis = %q, %v", got, err)
	}
	if err := rs.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := c.Ping(ctx).Err(); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("embedded redis after Stop: PING = %v, want a refused connection", err)
	}
}
