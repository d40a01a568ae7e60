package services

import (
	"context"
	"log/slog"
	"sync"
	"syscall"
	"time"
)

// Restarts of a private server that died by itself: at most keeperMaxRestarts
// within keeperWindow, the first after keeperBackoff, doubling up to 10 s.
// Beyond that the server stays down (logged): something is wrong that a
// restart does not fix, and readiness reports it.
const (
	keeperMaxRestarts = 5
	keeperWindow      = 10 * time.Minute
	keeperBackoff     = 200 * time.Millisecond
)

// keeper restarts a server process that exits without being stopped, on
// the same port, so that the platform's clients reconnect to the same URL.
// Safe for concurrent use.
type keeper struct {
	name    string
	log     *slog.Logger
	restart func(ctx context.Context) (*process, error)

	mu       sync.Mutex
	proc     *process
	stopped  bool
	restarts []time.Time
	done     chan struct{}
}

// keep watches p and restarts it with restart whenever it dies by itself.
func keep(name string, p *process, restart func(ctx context.Context) (*process, error), log *slog.Logger) *keeper {
	k := &keeper{name: name, log: log, restart: restart, proc: p, done: make(chan struct{})}
	go k.watch()
	return k
}

func (k *keeper) current() *process {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.proc
}

func (k *keeper) watch() {
	defer close(k.done)
	wait := keeperBackoff
	for {
		p := k.current()
		<-p.exited
		k.mu.Lock()
		if k.stopped {
			k.mu.Unlock()
			return
		}
		now := time.Now()
		recent := k.restarts[:0]
		for _, at := range k.restarts {
			if now.Sub(at) < keeperWindow {
				recent = append(recent, at)
			}
		}
		k.restarts = recent
		if len(recent) >= keeperMaxRestarts {
			k.mu.Unlock()
			k.log.Error(k.name+" died again and is not restarted", "restarts", len(recent), "within", keeperWindow.String(), "err", p.err)
			return
		}
		k.restarts = append(k.restarts, now)
		k.mu.Unlock()
		k.log.Error(k.name+" died; restarting it", "err", p.err, "in", wait.String(), "restart", len(recent)+1)
		time.Sleep(wait)
		wait = min(wait*2, 10*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout+5*time.Second)
		np, err := k.restart(ctx)
		cancel()
		if err != nil {
			k.log.Error(k.name+" restart failed", "err", err)
			continue // p has exited: the next turn counts and retries
		}
		k.mu.Lock()
		k.proc = np
		if k.stopped {
			// stop is waiting for this loop: it stops np, the process
			// it now finds current, as it would have stopped the one
			// that died.
			k.mu.Unlock()
			return
		}
		k.mu.Unlock()
		wait = keeperBackoff
		k.log.Warn(k.name+" restarted", "pid", np.cmd.Process.Pid)
	}
}

// stop ends the watch and stops the current process with sig (see
// process.stop).
func (k *keeper) stop(ctx context.Context, sig syscall.Signal) error {
	k.mu.Lock()
	k.stopped = true
	p := k.proc
	k.mu.Unlock()
	err := p.stop(ctx, sig)
	<-k.done
	// A restart may have replaced the process meanwhile.
	if cur := k.current(); cur != p {
		return cur.stop(ctx, sig)
	}
	return err
}
