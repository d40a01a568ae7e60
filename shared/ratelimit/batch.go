package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// maxInFlight is how many script calls of batched decisions may be on their
// way to Redis at once: enough that Redis is not idle while this process
// reads the answer of one, few enough that concurrent callers share calls.
const maxInFlight = 4

// maxBatch bounds the decisions of one script call.
const maxBatch = 256

// ruleVals is how many values the script returns per rule.
const ruleVals = 6

// batcher sends decisions to Redis in script calls: a caller that finds
// fewer than maxInFlight calls on their way sends its own decision, together
// with every decision queued meanwhile, in one script call; otherwise it
// queues its decision and waits. When a call is answered and decisions are
// queued, the first of them is woken to send them all, so no goroutine of its
// own is needed and a lone caller pays one plain EVALSHA. Safe for concurrent
// use.
type batcher struct {
	rdb   *redis.Client
	slots int

	mu      sync.Mutex
	queue   []*call
	running int
}

// call is one decision (one request against its rules) and, once done is
// closed, its answer; lead, set before done is closed, asks the call's
// goroutine to send that batch (the call among it).
type call struct {
	keys []string
	args []any   // number of rules, then per rule the script's five arguments
	vals []int64 // the script's six values per rule
	now  int64   // Redis time of the decision, µs
	// deadline bounds the call (zero: none); a batch's round trip is
	// bounded by the earliest deadline of its calls. A call from Resilient
	// waits in the queue without a timer of its own: the calls on their way
	// before it end by their deadlines, no later than its own (Resilient
	// gives every call the same timeout), and its batch ends by its own.
	// Any other caller's context still ends its wait.
	deadline time.Time
	err      error
	lead     []*call
	done     chan struct{}
}

// run decides c and sets its answer.
func (b *batcher) run(ctx context.Context, c *call) error {
	b.mu.Lock()
	if b.running < maxInFlight {
		b.running++
		batch := append(b.take(), c)
		b.mu.Unlock()
		b.send(ctx, batch, c)
		return c.err
	}
	c.done = make(chan struct{})
	b.queue = append(b.queue, c)
	b.mu.Unlock()
	select {
	case <-c.done:
	case <-ctx.Done():
		b.mu.Lock()
		for i, q := range b.queue {
			if q == c { // not taken yet: leave
				b.queue = append(b.queue[:i], b.queue[i+1:]...)
				b.mu.Unlock()
				return ctx.Err()
			}
		}
		b.mu.Unlock()
		<-c.done // taken into a batch: its answer (or its lead) comes shortly
	}
	if c.lead != nil {
		b.send(ctx, c.lead, c)
	}
	return c.err
}

// take removes up to maxBatch-1 queued calls and returns them; b.mu is held.
func (b *batcher) take() []*call {
	n := min(len(b.queue), maxBatch-1)
	if n == 0 {
		return nil
	}
	batch := make([]*call, n, n+1)
	copy(batch, b.queue)
	b.queue = append(b.queue[:0], b.queue[n:]...)
	return batch
}

// send decides every call of batch, then hands the queue to its first call,
// or ends this turn, and wakes batch's calls but self (the caller's own).
func (b *batcher) send(ctx context.Context, batch []*call, self *call) {
	// The calls of others must not fail for this caller's cancellation, but
	// the earliest deadline of the batch's calls bounds the round trip.
	var dl time.Time
	for _, c := range batch {
		if !c.deadline.IsZero() && (dl.IsZero() || c.deadline.Before(dl)) {
			dl = c.deadline
		}
	}
	ctx = context.WithoutCancel(ctx)
	if !dl.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl)
		defer cancel()
	}
	b.eval(ctx, batch)
	b.mu.Lock()
	next := b.take()
	if next == nil {
		b.running--
	}
	b.mu.Unlock()
	if next != nil {
		next[0].lead = next
		close(next[0].done)
	}
	for _, c := range batch {
		if c != self {
			close(c.done)
		}
	}
}

// eval decides batch in one script call (and, the first time on a Redis that
// lacks the script, loads it and calls again).
func (b *batcher) eval(ctx context.Context, batch []*call) {
	rules, nargs := 0, 0
	for _, c := range batch {
		rules += len(c.keys)
		nargs += len(c.args)
	}
	args := make([]any, 0, 4+rules+nargs)
	args = append(args, "evalsha", script.Hash(), rules)
	for _, c := range batch {
		for _, k := range c.keys {
			args = append(args, k)
		}
	}
	args = append(args, b.slots, leaseShare)
	for _, c := range batch {
		args = append(args, c.args...)
	}
	vals, err := b.do(ctx, args)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		if err = script.Load(ctx, b.rdb).Err(); err == nil {
			vals, err = b.do(ctx, args)
		}
	}
	if err == nil && len(vals) != ruleVals*rules+1 {
		err = fmt.Errorf("script returned %d values for %d rules", len(vals), rules)
	}
	if err != nil {
		for _, c := range batch {
			c.err = err
		}
		return
	}
	now := vals[len(vals)-1]
	for _, c := range batch {
		n := ruleVals * len(c.keys)
		c.vals, vals = vals[:n:n], vals[n:]
		c.now = now
	}
}

// do sends one EVALSHA and reads its answer as integers.
func (b *batcher) do(ctx context.Context, args []any) ([]int64, error) {
	cmd := redis.NewIntSliceCmd(ctx, args...)
	_ = b.rdb.Process(ctx, cmd)
	return cmd.Result()
}
