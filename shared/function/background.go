package function

import (
	"context"
	"errors"
	"sync"
)

// Background is the work a function (or a long-running unit) does of its
// own between requests: one goroutine from its Start to its Stop. The zero
// value is ready to use; safe for concurrent use.
type Background struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// ErrStartedTwice is Go's answer when the work already runs.
var ErrStartedTwice = errors.New("background work already started")

// Go runs run in a goroutine with a context that Stop cancels.
func (b *Background) Go(run func(ctx context.Context)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cancel != nil {
		return ErrStartedTwice
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel, b.done = cancel, make(chan struct{})
	go func() {
		defer close(b.done)
		run(ctx)
	}()
	return nil
}

// Stop cancels the work and waits for it to return, or for ctx; work never
// started stops at once.
func (b *Background) Stop(ctx context.Context) error {
	b.mu.Lock()
	cancel, done := b.cancel, b.done
	b.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
