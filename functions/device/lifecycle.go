package device

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// mayRead reports whether p may see d: its owner, or an admin.
func mayRead(p auth.Principal, d *Device) bool {
	return d.UserID == p.UserID || p.HasRole("admin")
}

// ListLimit caps the devices List returns.
const ListLimit = 1000

// List returns p's devices that are not deleted, newest first; an admin gets
// every user's.
func (s *Service) List(ctx context.Context, p auth.Principal) ([]Device, error) {
	if !p.HasPermission("device:read") && !p.HasRole("admin") {
		return nil, apierr.New(apierr.Forbidden, "you may not read devices")
	}
	q := selectDevices + ` WHERE d.state <> 'deleted' AND (d.user_id::text = $1 OR $2) ORDER BY d.created_at DESC, d.id LIMIT ` +
		strconv.Itoa(ListLimit)
	rows, err := s.pool.Query(ctx, q, p.UserID, p.HasRole("admin"))
	if err != nil {
		return nil, fmt.Errorf("list devices of %s: %w", p.UserID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Device, error) { return scanDevice(r) })
	if err != nil {
		return nil, fmt.Errorf("list devices of %s: %w", p.UserID, err)
	}
	if out == nil {
		out = []Device{}
	}
	return out, nil
}

// Get returns device id when p owns it or is an admin (deleted devices
// included); otherwise apierr NotFound.
func (s *Service) Get(ctx context.Context, p auth.Principal, id string) (Device, error) {
	if !validate.UUID(id) {
		return Device{}, errNotFound()
	}
	d, err := scanDevice(s.pool.QueryRow(ctx, selectDevices+` WHERE d.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !mayRead(p, &d)) {
		return Device{}, errNotFound()
	}
	if err != nil {
		return Device{}, fmt.Errorf("read device %s: %w", id, err)
	}
	return d, nil
}

// operate runs fn on p's own device id with its row locked; another user's
// device is apierr NotFound, a missing permission apierr Forbidden.
func (s *Service) operate(ctx context.Context, p auth.Principal, id, perm string, fn func(tx pgx.Tx, d *Device) error) (Device, error) {
	var out Device
	err := s.withDevice(ctx, id, func(tx pgx.Tx, d *Device) error {
		if d.UserID != p.UserID {
			return errNotFound()
		}
		if !p.HasPermission(perm) {
			return apierr.New(apierr.Forbidden, "you may not do this to devices")
		}
		if err := fn(tx, d); err != nil {
			return err
		}
		out = *d
		return nil
	})
	return out, err
}

// Start asks for p's stopped (or failed) device id to run: it takes a
// running slot from the user context (apierr QuotaExceeded at the
// running-devices limit; InsufficientFunds, 409, when the balance does not
// cover an hour of it) and, in the same transaction as the state change to
// 'starting', writes the start command (create, for a device whose container
// was never made). Other states are apierr Conflict.
func (s *Service) Start(ctx context.Context, p auth.Principal, id string) (Device, error) {
	var took *Device
	d, err := s.operate(ctx, p, id, "device:operate", func(tx pgx.Tx, d *Device) error {
		if !d.State.In(StateStopped, StateError) {
			return conflict(d, "start")
		}
		if err := s.coverHour(ctx, d.UserID, d.CPUCores, d.MemoryMB); err != nil {
			return err
		}
		if !d.holdsSlot {
			idle, err := s.quota.Start(ctx, d.UserID, d.ID)
			if err != nil {
				return err
			}
			d.setIdleLimit(idle)
			took = d
			d.holdsSlot = true
		}
		op := deviceevents.OpStart
		if d.ContainerID == "" {
			op = deviceevents.OpCreate
		}
		s.transition(d, StateStarting, s.now())
		d.StopReason = ""
		if err := command(ctx, tx, SourceDevices, d, op, ""); err != nil {
			return err
		}
		return save(ctx, tx, d)
	})
	if err != nil && took != nil {
		s.undoStart(ctx, took)
	}
	return d, err
}

// undoStart gives back the running slot taken for d by a start whose
// transaction failed. A failure is logged; the slot is then given back when
// the device next stops or is deleted.
func (s *Service) undoStart(ctx context.Context, d *Device) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.quota.Stop(ctx, d.UserID, d.ID); err != nil {
		s.log.ErrorContext(ctx, "running slot of a device that did not start is still held",
			"device_id", d.ID, "user_id", d.UserID, "err", err)
	}
}

// Stop asks for p's running device id to stop ('stopping', stop command);
// the running slot is given back when device-runtime reports it stopped. A
// failed device goes to 'stopped' at once (it holds no slot), with a stop
// command so that nothing of it keeps running. Other states are apierr
// Conflict.
func (s *Service) Stop(ctx context.Context, p auth.Principal, id string) (Device, error) {
	return s.operate(ctx, p, id, "device:operate", func(tx pgx.Tx, d *Device) error {
		switch d.State {
		case StateRunning:
			s.transition(d, StateStopping, s.now())
		case StateError:
			s.transition(d, StateStopped, s.now())
		default:
			return conflict(d, "stop")
		}
		d.StopReason = deviceevents.ReasonUser
		if err := command(ctx, tx, SourceDevices, d, deviceevents.OpStop, deviceevents.ReasonUser); err != nil {
			return err
		}
		return save(ctx, tx, d)
	})
}

// Restart asks for p's running device id to restart ('restarting', restart
// command), when the balance covers an hour of it (else InsufficientFunds,
// 409). Other states are apierr Conflict.
func (s *Service) Restart(ctx context.Context, p auth.Principal, id string) (Device, error) {
	return s.operate(ctx, p, id, "device:operate", func(tx pgx.Tx, d *Device) error {
		if d.State != StateRunning {
			return conflict(d, "restart")
		}
		if err := s.coverHour(ctx, d.UserID, d.CPUCores, d.MemoryMB); err != nil {
			return err
		}
		s.transition(d, StateRestarting, s.now())
		if err := command(ctx, tx, SourceDevices, d, deviceevents.OpRestart, ""); err != nil {
			return err
		}
		return save(ctx, tx, d)
	})
}

// Delete asks for p's device id to be removed ('deleting', delete command);
// its port, quota and node capacity are freed when device-runtime reports it
// removed. A device already deleting is answered as it is; a deleted one is
// apierr Conflict.
func (s *Service) Delete(ctx context.Context, p auth.Principal, id string) (Device, error) {
	return s.operate(ctx, p, id, "device:delete", func(tx pgx.Tx, d *Device) error {
		switch d.State {
		case StateDeleting:
			return nil
		case StateDeleted:
			return conflict(d, "delete")
		}
		s.transition(d, StateDeleting, s.now())
		if err := command(ctx, tx, SourceDevices, d, deviceevents.OpDelete, ""); err != nil {
			return err
		}
		return save(ctx, tx, d)
	})
}

// transition moves d to state at at.
func (s *Service) transition(d *Device, state State, at time.Time) {
	d.State = state
	d.StateChangedAt = at
}
