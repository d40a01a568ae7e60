package outbox

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"

	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/metrics"
	"github.com/cloudphone/cloudphone/shared/tracing"
	"github.com/cloudphone/cloudphone/shared/workqueue"
)

// Options tune a Relay. Zero fields take the defaults written beside them.
type Options struct {
	Context       string           // names the bounded context in metrics and logs, e.g. "user"
	PollInterval  time.Duration    // 200ms: the longest a committed event waits when a notification is lost
	BatchSize     int              // 100: rows claimed per transaction
	Concurrency   int              // 4: sends in flight per batch; 1 sends a batch strictly in id order
	SendTimeout   time.Duration    // 10s: bound on one Send
	BaseBackoff   time.Duration    // 500ms: wait after the first failure, doubling per failure
	MaxBackoff    time.Duration    // 1m: cap on the wait between attempts
	MaxAttempts   int              // 10: failures after which a row is dead
	DisableListen bool             // poll only, without the LISTEN wake-up
	Log           *slog.Logger     // nil discards
	Metrics       *metrics.Metrics // nil: not counted; else OutboxEvents{context, outcome}
}

// Outcomes counted in metrics.OutboxEvents.
const (
	OutcomePublished = "published"
	OutcomeRetried   = "retried"
	OutcomeDead      = "dead"
	OutcomeRedriven  = "redriven"
)

func (o Options) withDefaults() Options {
	if o.PollInterval <= 0 {
		o.PollInterval = 200 * time.Millisecond
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = 10 * time.Second
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Minute
	}
	if o.MaxBackoff < o.BaseBackoff {
		o.MaxBackoff = o.BaseBackoff
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

// Backoff returns the wait before the next attempt after attempts failures:
// BaseBackoff doubled per failure after the first, capped at MaxBackoff.
func (o Options) Backoff(attempts int) time.Duration {
	return o.withDefaults().backoff().Delay(attempts)
}

func (o Options) backoff() workqueue.Backoff {
	return workqueue.Backoff{Base: o.BaseBackoff, Max: o.MaxBackoff, MaxAttempts: o.MaxAttempts}
}

// queue is the outbox table as a work queue: rows are claimed for the
// relay's transaction, in the order they were added.
var queue = workqueue.Queue{Table: "outbox"}

// Relay publishes the rows of one database's outbox table. Any number of
// relays, in any number of processes, may run on one table: a row is claimed
// by one transaction at a time (FOR UPDATE SKIP LOCKED), so no two relays
// send it concurrently. Delivery is at least once: a row whose send succeeded
// is sent again if the claiming transaction then fails to commit.
type Relay struct {
	pool   *pgxpool.Pool
	sender events.Sender
	opt    Options
	log    *slog.Logger
	wake   chan struct{}
}

// NewRelay returns a relay from pool's outbox table to sender. It panics when
// pool or sender is nil.
func NewRelay(pool *pgxpool.Pool, sender events.Sender, opt Options) *Relay {
	if pool == nil || sender == nil {
		panic("outbox.NewRelay: pool and sender are required")
	}
	opt = opt.withDefaults()
	return &Relay{
		pool:   pool,
		sender: sender,
		opt:    opt,
		log:    opt.Log.With("component", "outbox_relay", "context", opt.Context),
		wake:   make(chan struct{}, 1),
	}
}

// Run publishes due rows until ctx is done, then returns nil. It claims a
// batch whenever a notification from Add arrives (unless DisableListen), every
// PollInterval, and at once after a full batch. Database and send failures are
// logged and retried; they never stop Run. On cancellation the batch in hand
// starts no new sends, waits for those in flight (at most SendTimeout), and
// commits what they achieved.
func (r *Relay) Run(ctx context.Context) error {
	if !r.opt.DisableListen {
		lctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { r.listen(lctx) })
		defer func() { stop(); wg.Wait() }()
	}
	timer := time.NewTimer(r.opt.PollInterval)
	defer timer.Stop()
	// With LISTEN, the first batch waits for it, which wakes Run as soon as
	// it listens (a batch then finds every row committed before), or for
	// PollInterval when it fails. Meanwhile the pool's connection stays free
	// for the function starting beside the relay: a readiness probe or a
	// first request that found it taken would wait for another connection
	// to be dialled.
	wait := !r.opt.DisableListen
	for {
		if wait {
			select {
			case <-ctx.Done():
				return nil
			case <-r.wake:
			case <-timer.C:
			}
		}
		n, err := r.relayBatch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			r.log.ErrorContext(ctx, "outbox batch failed", "error", err)
		}
		wait = err != nil || n < r.opt.BatchSize
		if wait {
			timer.Reset(r.opt.PollInterval)
		}
	}
}

// poke wakes Run without blocking; one pending wake-up is enough.
func (r *Relay) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// listen turns notifications on Channel into wake-ups, reconnecting after a
// second when its connection fails. Polling covers the gaps.
func (r *Relay) listen(ctx context.Context) {
	for {
		err := r.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		r.log.WarnContext(ctx, "outbox listen connection failed; polling until it is back", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (r *Relay) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, r.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return err
	}
	r.poke() // rows committed before LISTEN took effect sent no notification we saw
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		r.poke()
	}
}

// claimDue locks up to $1 due pending rows that no other relay holds, oldest
// first.
var claimDue = queue.ClaimLocked("id, event_id, type, payload, attempts")

// finishTimeout bounds the statements that record a batch's sends, which run
// even after Run's ctx is cancelled.
const finishTimeout = 10 * time.Second

type claimed struct {
	id       int64
	eventID  string
	typ      string
	payload  []byte
	attempts int
}

type result struct {
	done   bool // false: not attempted, the row stays as it was
	err    error
	broken bool // the payload cannot be decoded: dead at once
}

// relayBatch claims one batch, sends it and records the outcome in the same
// transaction. It returns the number of rows claimed.
func (r *Relay) relayBatch(ctx context.Context) (int, error) {
	if ctx.Err() != nil {
		return 0, nil
	}
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin outbox batch: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
		defer cancel()
		_ = tx.Rollback(rctx) // no-op after Commit
	}()
	rows, err := tx.Query(ctx, claimDue, r.opt.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("claim outbox rows: %w", err)
	}
	batch, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (claimed, error) {
		var c claimed
		err := row.Scan(&c.id, &c.eventID, &c.typ, &c.payload, &c.attempts)
		return c, err
	})
	if err != nil {
		return 0, fmt.Errorf("claim outbox rows: %w", err)
	}
	if len(batch) == 0 {
		return 0, nil
	}

	results := r.sendAll(ctx, batch)

	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	var sent []int64
	var failed workqueue.Failures
	var retried, dead int
	for i, c := range batch {
		res := results[i]
		switch {
		case !res.done:
		case res.err == nil:
			sent = append(sent, c.id)
		default:
			attempts := c.attempts + 1
			status, delay := failed.Add(r.opt.backoff(), c.id, attempts, res.err, res.broken)
			log := r.log.With("event_id", c.eventID, "type", c.typ, "outbox_id", c.id, "attempts", attempts, "error", res.err.Error())
			if status == StatusDead {
				dead++
				log.ErrorContext(fctx, "outbox event is dead; redrive it once the cause is fixed")
			} else {
				retried++
				log.WarnContext(fctx, "outbox send failed; will retry", "retry_in", delay.String())
			}
		}
	}
	b := &pgx.Batch{}
	if len(sent) > 0 {
		b.Queue(queue.Done(), sent)
	}
	if failed.Len() > 0 {
		b.Queue(queue.Failed(), failed.Args()...)
	}
	if b.Len() > 0 {
		if err := tx.SendBatch(fctx, b).Close(); err != nil {
			return len(batch), fmt.Errorf("record outbox sends (%d sent, to be sent again): %w", len(sent), err)
		}
	}
	if err := tx.Commit(fctx); err != nil {
		return len(batch), fmt.Errorf("commit outbox batch (%d sent, to be sent again): %w", len(sent), err)
	}
	r.count(OutcomePublished, len(sent))
	r.count(OutcomeRetried, retried)
	r.count(OutcomeDead, dead)
	return len(batch), nil
}

// sendAll sends the batch: in one SendBatch when the sender has it, else
// with at most Concurrency sends in flight, starting them in id order. Once
// ctx is done it starts no more; sends in flight run to completion, bounded
// by SendTimeout.
func (r *Relay) sendAll(ctx context.Context, batch []claimed) []result {
	if bs, ok := r.sender.(events.BatchSender); ok {
		return r.sendBatch(ctx, bs, batch)
	}
	results := make([]result, len(batch))
	sem := make(chan struct{}, r.opt.Concurrency)
	var wg sync.WaitGroup
	for i, c := range batch {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			results[i] = r.send(ctx, c)
		})
	}
	wg.Wait()
	return results
}

// sendBatch decodes the batch and sends what decodes in one SendBatch,
// bounded by SendTimeout.
func (r *Relay) sendBatch(ctx context.Context, bs events.BatchSender, batch []claimed) []result {
	results := make([]result, len(batch))
	if ctx.Err() != nil {
		return results
	}
	evs := make([]event.Event, 0, len(batch))
	idx := make([]int, 0, len(batch))
	for i, c := range batch {
		var e event.Event
		if err := e.UnmarshalJSON(c.payload); err != nil {
			results[i] = result{done: true, broken: true, err: fmt.Errorf("decode outbox payload: %w", err)}
			continue
		}
		evs, idx = append(evs, e), append(idx, i)
	}
	if len(evs) == 0 {
		return results
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opt.SendTimeout)
	defer cancel()
	spans := make([]trace.Span, len(evs))
	for j, e := range evs {
		_, spans[j] = tracing.StartPublish(sctx, e)
	}
	errs := bs.SendBatch(sctx, evs)
	for j, i := range idx {
		var err error
		if j < len(errs) {
			err = errs[j]
		} else {
			err = fmt.Errorf("the sender answered %d of %d events", len(errs), len(evs))
		}
		tracing.End(spans[j], err)
		results[i] = result{done: true, err: err}
	}
	return results
}

func (r *Relay) send(ctx context.Context, c claimed) result {
	var e event.Event
	if err := e.UnmarshalJSON(c.payload); err != nil {
		return result{done: true, broken: true, err: fmt.Errorf("decode outbox payload: %w", err)}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opt.SendTimeout)
	defer cancel()
	sctx = logging.WithCorrelation(sctx, events.CorrelationOf(e))
	sctx, span := tracing.StartPublish(sctx, e)
	err := r.sender.Send(sctx, e)
	tracing.End(span, err)
	if err != nil {
		return result{done: true, err: err}
	}
	return result{done: true}
}

func (r *Relay) count(outcome string, n int) {
	if r.opt.Metrics != nil && n > 0 {
		r.opt.Metrics.OutboxEvents.WithLabelValues(r.opt.Context, outcome).Add(float64(n))
	}
}

var redrive = queue.Redrive("")

// Redrive makes the dead rows with the given ids pending again, or all dead
// rows when no ids are given, with a fresh set of MaxAttempts attempts and
// their last error kept. Ids that are not dead rows are ignored. It returns the
// number of rows re-driven and wakes the relays.
func (r *Relay) Redrive(ctx context.Context, ids ...int64) (int, error) {
	if ids == nil {
		ids = []int64{}
	}
	var n int
	err := db.WithTx(ctx, r.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, redrive, ids, nil)
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		if n > 0 {
			_, err = tx.Exec(ctx, `SELECT pg_notify('`+Channel+`', '')`)
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("redrive outbox rows: %w", err)
	}
	if n > 0 {
		r.log.InfoContext(ctx, "outbox dead rows re-driven", "count", n)
		r.count(OutcomeRedriven, n)
	}
	return n, nil
}

var selectDead = queue.Parked("id, event_id, type, source, subject, payload, created_at, attempts, next_attempt_at, last_error, status")

// Dead returns up to limit dead rows, oldest first; limit <= 0 means 100.
func (r *Relay) Dead(ctx context.Context, limit int) ([]Row, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := r.pool.Query(ctx, selectDead, limit)
	if err != nil {
		return nil, fmt.Errorf("list dead outbox rows: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Row])
	if err != nil {
		return nil, fmt.Errorf("list dead outbox rows: %w", err)
	}
	return out, nil
}
