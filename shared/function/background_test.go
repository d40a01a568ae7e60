package function

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackgroundRunsOnceUntilStopAndStopWaitsForIt(t *testing.T) {
	t.Parallel()
	var b Background
	if err := b.Stop(context.Background()); err != nil {
		t.Fatalf("stop before start: %v", err)
	}
	finished := make(chan struct{})
	if err := b.Go(func(ctx context.Context) { <-ctx.Done(); time.Sleep(20 * time.Millisecond); close(finished) }); err != nil {
		t.Fatal(err)
	}
	if err := b.Go(func(context.Context) {}); !errors.Is(err, ErrStartedTwice) {
		t.Fatalf("second start: %v", err)
	}
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-finished:
	default:
		t.Fatal("Stop returned before the work did")
	}
}

func TestBackgroundStopGivesUpWithItsContext(t *testing.T) {
	t.Parallel()
	var b Background
	release := make(chan struct{})
	defer close(release)
	if err := b.Go(func(context.Context) { <-release }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := b.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stop of work that ignores cancellation: %v", err)
	}
}
