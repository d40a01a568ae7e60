package device

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// ApplyReport turns one device-runtime report (e, of a RuntimeReports type,
// with data r) into state, in one transaction with e's inbox claim: a
// duplicate changes nothing. A report is ignored (acknowledged, no change)
// when its device is unknown or on another node, when it is stale (its Seq
// is below the device's latest command, or its At before the last report
// applied), or when it does not fit the device's state (a started report
// for a deleted device, say). Quota calls it makes (running slot, release)
// run inside the transaction and are idempotent, so a retry after a failure
// repeats them harmlessly. A report without a device id is a permanent
// error; a database or quota failure is a plain (retryable) error.
func (s *Service) ApplyReport(ctx context.Context, e event.Event, r deviceevents.RuntimeReport) error {
	if !validate.UUID(r.DeviceID) {
		return apierr.New(apierr.Invalid, "report %s names no device id", e.ID())
	}
	if r.At.IsZero() {
		r.At = s.now()
	}
	// Postgres keeps microseconds: compare reports at that precision.
	r.At = r.At.UTC().Truncate(time.Microsecond)
	var firstRun time.Duration // creation to running, when this report made a new device run
	err := db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		firstRun = 0
		first, err := inbox.Claim(ctx, tx, e)
		if err != nil || !first {
			return err
		}
		d, err := scanDevice(tx.QueryRow(ctx, selectDevices+` WHERE d.id = $1 FOR UPDATE OF d`, r.DeviceID))
		if errors.Is(err, pgx.ErrNoRows) {
			s.log.WarnContext(ctx, "report for an unknown device ignored", "device_id", r.DeviceID, "event_type", e.Type())
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock device %s: %w", r.DeviceID, err)
		}
		if why := stale(&d, r); why != "" {
			s.log.InfoContext(ctx, "runtime report ignored", "device_id", d.ID, "event_type", e.Type(), "state", d.State, "why", why)
			return nil
		}
		creating := d.State == StateCreating
		applied, err := s.apply(ctx, tx, &d, e.Type(), r)
		if creating && d.State == StateRunning {
			firstRun = max(r.At.Sub(d.CreatedAt), time.Nanosecond)
		}
		if err != nil || !applied {
			if err == nil {
				s.log.InfoContext(ctx, "runtime report ignored", "device_id", d.ID, "event_type", e.Type(), "state", d.State, "why", "does not fit the state")
			}
			return err
		}
		at := r.At
		d.lastReportAt = &at
		return save(ctx, tx, &d)
	})
	if err == nil && firstRun > 0 && s.metrics != nil {
		s.metrics.PhoneCreateToRunning.Observe(firstRun.Seconds())
	}
	return err
}

// stale says why r cannot be about d's current state, or "".
func stale(d *Device, r deviceevents.RuntimeReport) string {
	switch {
	case d.State == StateDeleted:
		return "the device is deleted"
	case r.NodeID != "" && r.NodeID != d.NodeID:
		return "the report is from another node"
	case r.Seq != 0 && r.Seq < d.opSeq:
		return "the report answers an earlier command"
	case d.lastReportAt != nil && r.At.Before(*d.lastReportAt):
		return "a later report was applied already"
	}
	return ""
}

// apply changes d for report typ and reports whether it applied.
func (s *Service) apply(ctx context.Context, tx pgx.Tx, d *Device, typ string, r deviceevents.RuntimeReport) (bool, error) {
	if r.ContainerID != "" && d.State != StateDeleting {
		d.ContainerID = r.ContainerID
	}
	switch typ {
	case deviceevents.EventRuntimeCreated:
		// Only the container id is news; a device stopped while being
		// created keeps it for its next start.
		return d.State != StateDeleting, nil
	case deviceevents.EventRuntimeStarted, deviceevents.EventRuntimeRestarted:
		switch {
		case d.State == StateRunning:
			return true, nil
		case d.State == StateRestarting, typ == deviceevents.EventRuntimeStarted && d.State.In(StateCreating, StateStarting, StateError):
			return true, s.toRunning(ctx, tx, d, r.At)
		}
	case deviceevents.EventRuntimeStopped:
		if d.State.In(StateStopping, StateRunning, StateRestarting) {
			reason := d.StopReason
			if d.State != StateStopping || reason == "" {
				reason = deviceevents.ReasonExited
			}
			return true, s.toStopped(ctx, tx, d, r.At, reason)
		}
	case deviceevents.EventRuntimeCrashed:
		switch {
		case d.State == StateStopping:
			return true, s.toStopped(ctx, tx, d, r.At, d.StopReason)
		case d.State.In(StateCreating, StateStarting, StateRunning, StateRestarting):
			return true, s.toError(ctx, tx, d, r.At, reasonOf(r, deviceevents.ReasonCrashed))
		}
	case deviceevents.EventRuntimeFailed:
		switch {
		case d.State == StateDeleting || r.Op == deviceevents.OpDelete:
			d.LastError = reasonOf(r, deviceevents.ReasonFailed)
			return true, nil
		case d.State.In(StateCreating, StateStarting, StateRunning, StateRestarting, StateStopping):
			return true, s.toError(ctx, tx, d, r.At, reasonOf(r, deviceevents.ReasonFailed))
		}
	case deviceevents.EventRuntimeRemoved:
		if d.State == StateDeleting {
			return true, s.toDeleted(ctx, tx, d, r.At)
		}
	default:
		return false, apierr.New(apierr.Invalid, "%s is not a runtime report", typ)
	}
	return false, nil
}

// reasonOf is r's reason (with its exit code), or fallback.
func reasonOf(r deviceevents.RuntimeReport, fallback string) string {
	reason := r.Reason
	if reason == "" {
		reason = fallback
	}
	if r.ExitCode != nil {
		reason = fmt.Sprintf("%s (exit code %d)", reason, *r.ExitCode)
	}
	if len(reason) > 500 {
		reason = reason[:500]
	}
	return reason
}

// toRunning moves d to running at at. A device coming back from error takes
// a running slot again; when the user context refuses it, the device is
// stopped (reason quota_exceeded) instead and never counted as running. A
// billed interval opens (EventRunning) unless one is open already (restart).
func (s *Service) toRunning(ctx context.Context, tx pgx.Tx, d *Device, at time.Time) error {
	if !d.holdsSlot {
		idle, err := s.quota.Start(ctx, d.UserID, d.ID)
		d.setIdleLimit(idle)
		if apierr.Is(err, apierr.QuotaExceeded) {
			s.transition(d, StateStopping, at)
			d.StopReason = deviceevents.ReasonQuotaExceeded
			return command(ctx, tx, SourceReports, d, deviceevents.OpStop, deviceevents.ReasonQuotaExceeded)
		}
		if err != nil {
			return err
		}
		d.holdsSlot = true
	}
	s.transition(d, StateRunning, at)
	d.LastError, d.StopReason = "", ""
	// A run (and a restart) starts the idle clock afresh.
	d.LastActiveAt = &at
	if d.RunningSince != nil {
		return nil
	}
	d.RunningSince = &at
	return fact(ctx, tx, deviceevents.EventRunning, SourceReports, d, deviceevents.Running{
		SchemaVersion: 1, DeviceID: d.ID, UserID: d.UserID, CPUCores: d.CPUCores, MemoryMB: d.MemoryMB, At: at,
	})
}

// closeInterval ends d's billed interval at at, if one is open, with
// EventStopped for reason; it reports whether one was open.
func closeInterval(ctx context.Context, tx pgx.Tx, d *Device, at time.Time, reason string, emit bool) (bool, error) {
	if d.RunningSince == nil {
		return false, nil
	}
	d.RunningSince = nil
	if !emit {
		return true, nil
	}
	return true, fact(ctx, tx, deviceevents.EventStopped, SourceReports, d, deviceevents.Stopped{
		SchemaVersion: 1, DeviceID: d.ID, UserID: d.UserID, At: at, Reason: reason,
	})
}

// releaseSlot gives d's running slot back to the user context.
func (s *Service) releaseSlot(ctx context.Context, d *Device) error {
	if !d.holdsSlot {
		return nil
	}
	if err := s.quota.Stop(ctx, d.UserID, d.ID); err != nil {
		return err
	}
	d.holdsSlot = false
	return nil
}

// toStopped moves d to stopped at at, gives its running slot back and closes
// its billed interval.
func (s *Service) toStopped(ctx context.Context, tx pgx.Tx, d *Device, at time.Time, reason string) error {
	if reason == "" {
		reason = deviceevents.ReasonExited
	}
	if err := s.releaseSlot(ctx, d); err != nil {
		return err
	}
	s.transition(d, StateStopped, at)
	d.StopReason = reason
	_, err := closeInterval(ctx, tx, d, at, reason, true)
	return err
}

// toError moves d to error at at with reason, gives its running slot back
// and emits EventError (which also ends an open billed interval).
func (s *Service) toError(ctx context.Context, tx pgx.Tx, d *Device, at time.Time, reason string) error {
	if err := s.releaseSlot(ctx, d); err != nil {
		return err
	}
	s.transition(d, StateError, at)
	d.LastError = reason
	if _, err := closeInterval(ctx, tx, d, at, reason, false); err != nil {
		return err
	}
	return fact(ctx, tx, deviceevents.EventError, SourceReports, d, deviceevents.Failed{
		SchemaVersion: 1, DeviceID: d.ID, UserID: d.UserID, At: at, Reason: reason,
	})
}

// toDeleted moves d to deleted at at: its quota (and running slot) is
// released, its port and node capacity freed, an open billed interval
// closed (EventStopped, reason deleted) and EventDeleted emitted.
func (s *Service) toDeleted(ctx context.Context, tx pgx.Tx, d *Device, at time.Time) error {
	if err := s.quota.Release(ctx, d.UserID, d.ID); err != nil {
		return err
	}
	d.holdsSlot = false
	if err := freePort(ctx, tx, d.ID); err != nil {
		return err
	}
	if err := unplace(ctx, tx, d); err != nil {
		return err
	}
	if _, err := closeInterval(ctx, tx, d, at, deviceevents.ReasonDeleted, true); err != nil {
		return err
	}
	s.transition(d, StateDeleted, at)
	d.DeletedAt = &at
	return fact(ctx, tx, deviceevents.EventDeleted, SourceReports, d, deviceevents.Deleted{SchemaVersion: 1, DeviceID: d.ID, UserID: d.UserID, At: at})
}

// StopForFunds applies billing's balance.exhausted fact e for userID, in one
// transaction with e's inbox claim: every device of the user that runs or is
// about to (creating, starting, running, restarting) goes to 'stopping' with
// reason insufficient_funds and gets a stop command (device-runtime handles a
// device's commands in order, so a device being created is created and then
// stopped, and never counted as running); a failed device, which
// device-runtime may recreate, goes to 'stopped' with a stop command too. It
// returns how many devices it stopped; a redelivery stops none.
func (s *Service) StopForFunds(ctx context.Context, e event.Event, userID string) (int, error) {
	return s.stopBeyond(ctx, e, userID, 0, SourceBalanceStop, deviceevents.ReasonInsufficientFunds)
}

// StopBeyondQuota applies the user context's quota.revoked fact: when the
// user now may run fewer devices than run (or are about to), the newest are
// stopped (reason quota_reduced) so that the oldest maxRunning keep running.
// It returns how many it stopped; a redelivery stops none.
func (s *Service) StopBeyondQuota(ctx context.Context, e event.Event, userID string, maxRunning int) (int, error) {
	return s.stopBeyond(ctx, e, userID, max(maxRunning, 0), SourceQuotaStop, deviceevents.ReasonQuotaReduced)
}

// stopBeyond stops, in one transaction with e's inbox claim, every device of
// userID that runs or is about to, but the keep oldest. With keep 0 a failed
// device (which device-runtime may recreate) is stopped too.
func (s *Service) stopBeyond(ctx context.Context, e event.Event, userID string, keep int, source, reason string) (int, error) {
	if !validate.UUID(userID) {
		return 0, apierr.New(apierr.Invalid, "event %s names no user id", e.ID())
	}
	states := "'creating', 'starting', 'running', 'restarting'"
	if keep == 0 {
		states += ", 'error'"
	}
	n := 0
	err := db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		n = 0
		first, err := inbox.Claim(ctx, tx, e)
		if err != nil || !first {
			return err
		}
		rows, err := tx.Query(ctx, selectDevices+` WHERE d.user_id = $1
			AND d.state IN (`+states+`)
			ORDER BY d.created_at, d.id FOR UPDATE OF d`, userID)
		if err != nil {
			return fmt.Errorf("lock running devices of %s: %w", userID, err)
		}
		devs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Device, error) { return scanDevice(r) })
		if err != nil {
			return fmt.Errorf("lock running devices of %s: %w", userID, err)
		}
		for i := range devs[min(keep, len(devs)):] {
			d := &devs[keep+i]
			if d.State == StateError {
				s.transition(d, StateStopped, s.now())
			} else {
				s.transition(d, StateStopping, s.now())
			}
			d.StopReason = reason
			if err := command(ctx, tx, source, d, deviceevents.OpStop, reason); err != nil {
				return err
			}
			if err := save(ctx, tx, d); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err == nil && n > 0 {
		s.log.InfoContext(ctx, "devices stopped", "user_id", userID, "devices", n, "reason", reason)
	}
	return n, err
}
