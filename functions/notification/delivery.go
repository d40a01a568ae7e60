package notification

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Drained counts what one Drain sent or gave up.
type Drained struct {
	Emails     int `json:"emails"`
	Deliveries int `json:"deliveries"`
}

// Drain sends every email and webhook delivery that is due, one at a time,
// until none is left or ctx is done, and returns how many it handled (each
// sent, rescheduled or given up). Several Drains may run at once, in one
// process or many: each claims its rows with FOR UPDATE SKIP LOCKED.
func (s *Service) Drain(ctx context.Context) (Drained, error) {
	var d Drained
	for ctx.Err() == nil {
		sentEmail, err := s.sendDueEmail(ctx)
		if err != nil {
			return d, err
		}
		if sentEmail {
			d.Emails++
		}
		sentHook, err := s.sendDueDelivery(ctx)
		if err != nil {
			return d, err
		}
		if sentHook {
			d.Deliveries++
		}
		if !sentEmail && !sentHook {
			return d, nil
		}
	}
	return d, ctx.Err()
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
