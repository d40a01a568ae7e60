package notification

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Drained counts what one Drain sent or gave up.
type Drained struct {
	Emails     int `json:"emails"`
	Deliveries int `json:"deliveries"`
}

// drainLanes is how many emails and webhook deliveries one Drain sends at
// once. Each lane claims its own row (FOR UPDATE SKIP LOCKED) and holds a
// pool connection while it sends, so a handful keeps a mail server busy
// without starving the rest of the process of connections.
const drainLanes = 4

// Drain sends every email and webhook delivery that is due, until none is
// left or ctx is done, and returns how many it handled (each sent,
// rescheduled or given up). It starts with one lane and adds one, up to
// drainLanes, each time a lane finds work, so that a backlog is sent several
// at a time while a single due row costs one extra look. Several Drains may
// run at once, in one process or many: each row is claimed by one of them.
func (s *Service) Drain(ctx context.Context) (Drained, error) {
	var (
		mu    sync.Mutex
		total Drained
		errs  []error
		lanes = 1
		wg    sync.WaitGroup
	)
	var lane func()
	lane = func() {
		var d Drained
		err := s.drainLane(ctx, &d, func() {
			mu.Lock()
			defer mu.Unlock()
			if lanes < drainLanes {
				lanes++
				wg.Go(lane)
			}
		})
		mu.Lock()
		defer mu.Unlock()
		total.Emails += d.Emails
		total.Deliveries += d.Deliveries
		if err != nil {
			errs = append(errs, err)
		}
	}
	wg.Go(lane)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return total, err
	}
	return total, ctx.Err()
}

// drainLane sends due emails and webhook deliveries one at a time, counting
// them in d, until none is left, and calls found after each round that
// handled something.
func (s *Service) drainLane(ctx context.Context, d *Drained, found func()) error {
	for ctx.Err() == nil {
		sentEmail, err := s.sendDueEmail(ctx)
		if err != nil {
			return err
		}
		if sentEmail {
			d.Emails++
		}
		sentHook, err := s.sendDueDelivery(ctx)
		if err != nil {
			return err
		}
		if sentHook {
			d.Deliveries++
		}
		if !sentEmail && !sentHook {
			return nil
		}
		found()
	}
	return nil
}

// RunDelivery drains on every wake-up Record sends (LISTEN
// DeliveryChannel) and at least every Config.DeliveryPoll, until ctx is
// done. A lost database connection is logged and re-opened; it returns nil
// when ctx ends it.
func (s *Service) RunDelivery(ctx context.Context) error {
	for ctx.Err() == nil {
		if err := s.listenAndDrain(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "delivery worker lost its connection, reconnecting", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

func (s *Service) listenAndDrain(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire a listen connection: %w", err)
	}
	defer release(conn)
	if _, err := conn.Exec(ctx, "LISTEN "+DeliveryChannel); err != nil {
		return fmt.Errorf("listen %s: %w", DeliveryChannel, err)
	}
	for {
		if _, err := s.Drain(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "delivery drain failed", "err", err)
		}
		wctx, cancel := context.WithTimeout(ctx, s.cfg.DeliveryPoll)
		_, err := conn.Conn().WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil, errors.Is(err, context.DeadlineExceeded):
		default:
			return fmt.Errorf("wait for %s: %w", DeliveryChannel, err)
		}
	}
}

// release returns a LISTENing connection to the pool unlistened, or closes
// it when that fails.
func release(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, "UNLISTEN *"); err != nil {
		_ = conn.Conn().Close(ctx)
	}
	conn.Release()
}
