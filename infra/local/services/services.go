// Package services starts the private Postgres and Redis servers a developer
// laptop or a CI job needs: real binaries from the machine as child processes,
// on free loopback ports, with their data under a directory of the caller's
// choosing so that it survives a restart.
package services

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// startAttempts bounds the retries when a freshly picked port is taken by
// someone else before the server binds it.
const startAttempts = 5

// readyTimeout bounds how long a server may take to accept connections.
const readyTimeout = 30 * time.Second

// stopTimeout bounds a graceful stop when the caller's context has no deadline.
const stopTimeout = 30 * time.Second

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. Another
// process may take it before the caller binds it, so callers retry on a clash.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// process is a started child server and the outcome of waiting for it.
type process struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been reaped
	err    error         // the wait error, valid once exited is closed

	stopOnce sync.Once
	stopErr  error
}

func startProcess(name string, cmd *exec.Cmd) (*process, error) {
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// running reports whether the process has not exited yet.
func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends sig, waits for the exit until ctx is done or stopTimeout passed,
// then kills the process group. It returns an error when the process had
// exited on its own before stop, or had to be killed. Safe to call repeatedly.
func (p *process) stop(ctx context.Context, sig syscall.Signal) error {
	p.stopOnce.Do(func() {
		if !p.running() {
			p.stopErr = fmt.Errorf("%s had exited on its own: %v", p.name, p.err)
			return
		}
		_ = p.cmd.Process.Signal(sig)
		bound := time.NewTimer(stopTimeout)
		defer bound.Stop()
		select {
		case <-p.exited:
			return
		case <-ctx.Done():
		case <-bound.C:
		}
		killGroup(p.cmd.Process.Pid)
		<-p.exited
		p.stopErr = fmt.Errorf("%s did not stop in time and was killed", p.name)
	})
	return p.stopErr
}

// waitReady polls ready every 100 ms until it succeeds, the process exits,
// ctx is done or readyTimeout passes.
func (p *process) waitReady(ctx context.Context, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		last = ready(attempt)
		cancelAttempt()
		if last == nil {
			return nil
		}
		select {
		case <-p.exited:
			return errExited{p.err}
		case <-ctx.Done():
			return fmt.Errorf("%s not accepting connections after %s: %w", p.name, readyTimeout, errors.Join(ctx.Err(), last))
		case <-tick.C:
		}
	}
}

// errExited says the server exited while it was being waited for.
type errExited struct{ err error }

func (e errExited) Error() string { return fmt.Sprintf("exited during start-up: %v", e.err) }

// kill ends a process that failed to start properly.
func (p *process) kill() {
	if p.running() {
		killGroup(p.cmd.Process.Pid)
	}
	<-p.exited
}

// killGroup sends SIGKILL to the process group the server leads (the
// postmaster's backends too).
func killGroup(pid int) {
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// tail returns the last n bytes of the file at path, from offset on.
func tail(path string, offset int64, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	from := max(offset, st.Size()-n)
	buf := make([]byte, st.Size()-from)
	_, _ = f.ReadAt(buf, from)
	return string(buf)
}

// fileSize returns the size of the file at path, 0 when it does not exist.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}
