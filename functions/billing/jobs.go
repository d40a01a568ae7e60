package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudphone/cloudphone/functions/billing/billingevents"
)

// JobReport says what one run of the scheduled billing function did; a job
// that was not due is nil.
type JobReport struct {
	Swept    int           `json:"swept"`
	Expired  *int          `json:"expired,omitempty"`
	Charged  *ChargeReport `json:"charged,omitempty"`
	Redriven *int          `json:"redriven,omitempty"`
}

// Job names in the jobs table.
const (
	JobExpiry  = "subscription-expiry"
	JobCharge  = "usage-charge"
	JobRedrive = "outbox-redrive"
)

// RunScheduled runs the billing jobs for a tick of type typ due at at:
// EventSweepRequested (every minute) sweeps overdue sagas and runs the
// expiry, charging and outbox re-drive jobs when their interval has passed
// since their last run; EventExpiryRequested and EventChargeRequested run that
// job at once. redrive re-drives the outbox's parked rows (nil: skip). Runs
// may overlap: every job is safe to run twice at once.
func (s *Service) RunScheduled(ctx context.Context, typ string, at time.Time, redrive func(context.Context) (int, error)) (JobReport, error) {
	var rep JobReport
	if at.IsZero() {
		at = s.now()
	}
	at = at.UTC()
	runExpiry, runCharge, runRedrive := false, false, false
	switch typ {
	case billingevents.EventSweepRequested:
		n, err := s.SweepSagas(ctx)
		rep.Swept = n
		if err != nil {
			return rep, err
		}
		if runExpiry, err = s.due(ctx, JobExpiry, s.cfg.ExpiryEvery, at); err != nil {
			return rep, err
		}
		if runCharge, err = s.due(ctx, JobCharge, s.cfg.ChargeEvery, at); err != nil {
			return rep, err
		}
		if redrive != nil {
			if runRedrive, err = s.due(ctx, JobRedrive, s.cfg.RedriveEvery, at); err != nil {
				return rep, err
			}
		}
	case billingevents.EventExpiryRequested:
		runExpiry = true
	case billingevents.EventChargeRequested:
		runCharge = true
	default:
		return rep, fmt.Errorf("no billing job for %s", typ)
	}
	if runExpiry {
		n, err := s.ExpireSubscriptions(ctx)
		if err != nil {
			return rep, err
		}
		rep.Expired = &n
	}
	if runCharge {
		c, err := s.ChargeUsage(ctx)
		if err != nil {
			return rep, err
		}
		rep.Charged = &c
	}
	if runRedrive {
		n, err := redrive(ctx)
		if err != nil {
			return rep, fmt.Errorf("re-drive billing outbox: %w", err)
		}
		rep.Redriven = &n
	}
	return rep, nil
}

// dueSlack absorbs the jitter of ticks that are due exactly every interval.
const dueSlack = 30 * time.Second

// due records a run of job at at and reports true when its last run is at
// least every ago (or there was none); of two overlapping callers only one
// gets true.
func (s *Service) due(ctx context.Context, job string, every time.Duration, at time.Time) (bool, error) {
	if _, err := s.pool.Exec(ctx, `INSERT INTO jobs (name) VALUES ($1) ON CONFLICT DO NOTHING`, job); err != nil {
		return false, fmt.Errorf("job %s: %w", job, err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE jobs SET last_run_at = $2 WHERE name = $1 AND (last_run_at IS NULL OR last_run_at <= $3)`,
		job, at, at.Add(-every+dueSlack))
	if err != nil {
		return false, fmt.Errorf("job %s: %w", job, err)
	}
	return tag.RowsAffected() == 1, nil
}
