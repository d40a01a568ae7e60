package services

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// RedisOptions tunes a private Redis server. The zero value looks for
// redis-server on PATH.
type RedisOptions struct {
	// LookPath finds the redis-server binary; nil means exec.LookPath. When it
	// fails, an embedded miniredis serves instead.
	LookPath func(file string) (string, error)
	// Restart restarts redis-server, on the same port and data, when it
	// dies by itself (bounded, logged); see keeper.
	Restart bool
}

// Redis is a private Redis server: a redis-server child process, or an
// embedded miniredis when the machine has no redis-server. Its methods are
// safe for concurrent use.
type Redis struct {
	port int
	dir  string
	proc *process             // nil when embedded
	keep *keeper              // set with RedisOptions.Restart
	mini *miniredis.Miniredis // nil unless embedded
	log  *slog.Logger
}

// StartRedis starts a private Redis on a free port of 127.0.0.1 and returns
// once it answers PING (at most about 30 s). With the redis-server binary,
// data is kept in an append-only file under dir and survives a Stop and a new
// start on the same dir. Without it, an embedded miniredis serves from memory:
// it speaks the same protocol for the commands the platform uses, but keeps
// nothing across a Stop (Embedded reports true). The server keeps running
// after ctx is done, until Stop.
func StartRedis(ctx context.Context, dir string, opts RedisOptions, log *slog.Logger) (*Redis, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lookPath := opts.LookPath
	if lookPath == nil {
		lookPath = exec.LookPath
	}
	bin, lookErr := lookPath("redis-server")
	if lookErr != nil {
		return startMiniredis(log, lookErr)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("redis data dir %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create redis data dir: %w", err)
	}
	rs := &Redis{dir: dir, log: log}
	for attempt := 1; ; attempt++ {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		err = rs.start(ctx, bin, port)
		if err == nil {
			log.Info("redis started", "dir", dir, "port", rs.port, "pid", rs.proc.cmd.Process.Pid)
			if opts.Restart {
				rs.keep = keep("redis", rs.proc, func(ctx context.Context) (*process, error) {
					if err := rs.start(ctx, bin, rs.port); err != nil {
						return nil, err
					}
					return rs.proc, nil
				}, log)
			}
			return rs, nil
		}
		var exited errExited
		if attempt < startAttempts && errors.As(err, &exited) && strings.Contains(err.Error(), "in use") {
			log.Warn("redis port taken, retrying with another", "port", rs.port)
			continue
		}
		return nil, err
	}
}

func (rs *Redis) start(ctx context.Context, bin string, port int) error {
	rs.port = port
	var err error
	logPath := filepath.Join(rs.dir, "redis.log")
	offset := fileSize(logPath)
	cmd := exec.Command(bin,
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--dir", rs.dir,
		"--appendonly", "yes",
		"--daemonize", "no",
		"--protected-mode", "no",
		"--save", "",
		"--logfile", logPath,
	)
	cmd.Dir = rs.dir
	cmd.SysProcAttr = childAttr(nil, syscall.SIGTERM)
	rs.proc, err = startProcess("redis-server", cmd)
	if err != nil {
		return err
	}
	err = rs.proc.waitReady(ctx, func(ctx context.Context) error { return ping(ctx, rs.addr()) })
	if err != nil {
		rs.proc.kill()
		return fmt.Errorf("redis-server on port %d: %w\n%s", port, err, tail(logPath, offset, 2048))
	}
	return nil
}

func startMiniredis(log *slog.Logger, why error) (*Redis, error) {
	var last error
	for range startAttempts {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		m := miniredis.NewMiniRedis()
		if last = m.StartAddr("127.0.0.1:" + strconv.Itoa(port)); last == nil {
			log.Warn("redis-server not found, serving an embedded in-memory Redis (data is not kept)",
				"port", port, "reason", why.Error())
			return &Redis{port: port, mini: m, log: log}, nil
		}
	}
	return nil, fmt.Errorf("start embedded redis: %w", last)
}

func (rs *Redis) addr() string { return "127.0.0.1:" + strconv.Itoa(rs.port) }

// URL is the server's connection URL: redis://127.0.0.1:PORT/0.
func (rs *Redis) URL() string { return "redis://" + rs.addr() + "/0" }

// Port is the TCP port the server listens on.
func (rs *Redis) Port() int { return rs.port }

// Embedded reports whether an in-memory miniredis serves instead of
// redis-server.
func (rs *Redis) Embedded() bool { return rs.mini != nil }

// Stop shuts the server down (SIGTERM: redis-server flushes its append-only
// file), waits for it until ctx is done or 30 s passed, and kills it after
// that. It returns an error when the server had to be killed or had exited by
// itself before. Calling it again returns the same result.
func (rs *Redis) Stop(ctx context.Context) error {
	if rs.mini != nil {
		rs.mini.Close()
		return nil
	}
	var err error
	if rs.keep != nil {
		err = rs.keep.stop(ctx, syscall.SIGTERM)
	} else {
		err = rs.proc.stop(ctx, syscall.SIGTERM)
	}
	if err == nil {
		rs.log.Info("redis stopped", "dir", rs.dir)
	}
	return err
}

// ping sends one PING and succeeds on +PONG (a server still loading its
// append-only file answers -LOADING).
func ping(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(2 * time.Second)
	}
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 256)
	n, err := conn.Read(buf)
	if err != nil {
		return err
	}
	if reply := strings.TrimSpace(string(buf[:n])); reply != "+PONG" {
		return fmt.Errorf("PING answered %q", reply)
	}
	return nil
}
