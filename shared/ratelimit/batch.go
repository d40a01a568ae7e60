package ratelimit

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// pipeliner is what batcher needs of a Redis client beyond redis.Scripter
// (*redis.Client, *redis.ClusterClient and *redis.Ring have it).
type pipeliner interface {
	Pipeline() redis.Pipeliner
}

// maxPipelines is how many pipelines of decisions may be on their way to
// Redis at once: enough that Redis is not idle while this process reads the
// answers of one, few enough that concurrent callers share round trips.
const maxPipelines = 4

// maxBatch bounds the decisions of one pipeline.
const maxBatch = 256

// batcher sends script calls to Redis in pipelines: a caller that finds
// fewer than maxPipelines on their way sends its own call, together with
// every call queued meanwhile; otherwise it queues its call and waits. When
// a pipeline is answered and calls are queued, the first of them is woken to
// send them all, so no goroutine of its own is needed and a lone caller pays
// one plain EVALSHA. Safe for concurrent use.
type batcher struct {
	rdb  redis.Scripter
	pipe pipeliner

	mu      sync.Mutex
	queue   []*call
	running int
}

// call is one script call and, once done is closed, its answer; lead, set
// before done is closed, asks the call's goroutine to send that batch (the
// call among it).
type call struct {
	keys []string
	args []any
	vals []int64
	err  error
	lead []*call
	done chan struct{}
}

// run evaluates the script with keys and args and returns its answer.
func (b *batcher) run(ctx context.Context, keys []string, args []any) ([]int64, error) {
	c := &call{keys: keys, args: args}
	b.mu.Lock()
	if b.running < maxPipelines {
		b.running++
		batch := append(b.take(), c)
		b.mu.Unlock()
		b.send(ctx, batch, c)
		return c.vals, c.err
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
				return nil, ctx.Err()
			}
		}
		b.mu.Unlock()
		<-c.done // taken into a batch: its answer (or its lead) comes shortly
	}
	if c.lead != nil {
		b.send(ctx, c.lead, c)
	}
	return c.vals, c.err
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

// send evaluates every call of batch, then hands the queue to its first
// call, or ends this pipeline's turn, and wakes batch's calls but self (the
// caller's own).
func (b *batcher) send(ctx context.Context, batch []*call, self *call) {
	// The calls of others must not fail for this caller's cancellation, but
	// its deadline (Resilient's timeout) still bounds the round trip.
	dl, hasDeadline := ctx.Deadline()
	ctx = context.WithoutCancel(ctx)
	if hasDeadline {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl)
		defer cancel()
	}
	if len(batch) == 1 {
		c := batch[0]
		c.vals, c.err = script.Run(ctx, b.rdb, c.keys, c.args...).Int64Slice()
	} else {
		b.pipeline(ctx, batch)
	}
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

// pipeline evaluates batch in one round trip (and, the first time on a
// Redis that lacks the script, a second one to load it).
func (b *batcher) pipeline(ctx context.Context, batch []*call) {
	p := b.pipe.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i, c := range batch {
		cmds[i] = script.EvalSha(ctx, p, c.keys, c.args...)
	}
	_, _ = p.Exec(ctx)
	for i, c := range batch {
		c.vals, c.err = cmds[i].Int64Slice()
		if c.err != nil && redis.HasErrorPrefix(c.err, "NOSCRIPT") {
			c.vals, c.err = script.Run(ctx, b.rdb, c.keys, c.args...).Int64Slice()
		}
	}
}
