package device

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// IdleLease is the lease row of the idle stop: of overlapping runs (two
// instances, or a slow run and the next tick) only its holder stops devices.
const IdleLease = "idle-stop"

// setIdleLimit applies the user's idle limit the user context answered on a
// start; 0 (none named) keeps the device's.
func (d *Device) setIdleLimit(minutes int) {
	if minutes > 0 {
		d.IdleMinutes = minutes
	}
}

// ApplyConnection records the gateway's fact typ (EventConnectionOpened or
// EventConnectionClosed) about one ADB session: an open session keeps its
// device from being stopped as idle, and opening or closing one counts as
// use at its time. It is idempotent and order-free: a closed fact that
// arrives before its opened fact records the session closed, and the late
// opened fact changes nothing. Undecodable facts are apierr Invalid.
func (s *Service) ApplyConnection(ctx context.Context, typ string, c deviceevents.ConnectionFact) error {
	if !validate.UUID(c.DeviceID) || c.SessionID == "" || len(c.SessionID) > 128 || c.At.IsZero() {
		return apierr.New(apierr.Invalid, "connection fact needs device_id, session_id and at")
	}
	var q string
	switch typ {
	case deviceevents.EventConnectionOpened:
		q = `INSERT INTO device_sessions (session_id, device_id, opened_at) VALUES ($1, $2, $3)
			ON CONFLICT (session_id) DO NOTHING`
	case deviceevents.EventConnectionClosed:
		q = `INSERT INTO device_sessions (session_id, device_id, opened_at, closed_at) VALUES ($1, $2, $3, $3)
			ON CONFLICT (session_id) DO UPDATE SET closed_at = EXCLUDED.closed_at`
	default:
		return apierr.New(apierr.Invalid, "%q is not a connection fact", typ)
	}
	return db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, q, c.SessionID, c.DeviceID, c.At); err != nil {
			return fmt.Errorf("record session %s of device %s: %w", c.SessionID, c.DeviceID, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE devices SET last_active_at = greatest(last_active_at, $2)
			WHERE id = $1 AND state = 'running'`, c.DeviceID, c.At); err != nil {
			return fmt.Errorf("mark device %s used: %w", c.DeviceID, err)
		}
		return nil
	})
}

// touchEvery spares the database a write for every screenshot of a page
// that refreshes once a second: one process records use of a device at most
// this often.
const touchEvery = 15 * time.Second

// touches remembers when this process last recorded each device's use.
type touches struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// due reports whether use of id at now should be written, and notes it.
func (t *touches) due(id string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last == nil {
		t.last = map[string]time.Time{}
	}
	if at, ok := t.last[id]; ok && now.Sub(at) < touchEvery {
		return false
	}
	if len(t.last) >= 10000 {
		for k, at := range t.last {
			if now.Sub(at) >= touchEvery {
				delete(t.last, k)
			}
		}
	}
	t.last[id] = now
	return true
}

// Touch records that device id was used through the API (shell, screenshot,
// logs) now. A device that is not running is left alone.
func (s *Service) Touch(ctx context.Context, id string) error {
	now := s.now()
	if !validate.UUID(id) || !s.touched.due(id, now) {
		return nil
	}
	_, err := s.pool.Exec(ctx, `UPDATE devices SET last_active_at = greatest(last_active_at, $2)
		WHERE id = $1 AND state = 'running'`, id, now)
	if err != nil {
		return fmt.Errorf("mark device %s used: %w", id, err)
	}
	return nil
}

// IdleOptions shape one idle-stop run.
type IdleOptions struct {
	// Minute is the length of one idle minute (time.Minute; tests shorten
	// it so that a plan's minutes pass in seconds).
	Minute time.Duration
	// Lease is how long a run holds IdleLease: a run that dies holding it
	// delays the next by at most this.
	Lease time.Duration
	// SessionMaxAge is how long an ADB session with no closed fact counts
	// as open: a gateway that dies sends none.
	SessionMaxAge time.Duration
	// Batch bounds the devices one run stops.
	Batch int
}

// IdleReport says what one idle-stop run did.
type IdleReport struct {
	// Leased is false when another run held the lease (nothing was done).
	Leased  bool `json:"leased"`
	Stopped int  `json:"stopped"`
}

// idleWhere holds for a running device with no open session unused for its
// idle limit at $1 (one idle minute is $2 seconds; a session opened before
// $3 no longer counts as open).
const idleWhere = `
d.state = 'running' AND d.idle_minutes > 0
  AND coalesce(d.last_active_at, d.running_since, d.state_changed_at)
      + d.idle_minutes * $2::float8 * interval '1 second' <= $1
  AND NOT EXISTS (SELECT 1 FROM device_sessions s
                  WHERE s.device_id = d.id AND s.closed_at IS NULL AND s.opened_at > $3)`

// StopIdle stops (reason idle) every running device that had no open ADB
// session and no use for its idle limit, if it can take IdleLease; of
// overlapping runs the others report Leased false and do nothing. Each
// device is stopped in its own transaction that locks it and checks it is
// still running and idle, with the stop command in the outbox: a run that
// dies midway has stopped some devices completely and left the rest to the
// next run. The device.stopped fact that tells the user follows when
// device-runtime reports the container stopped.
func (s *Service) StopIdle(ctx context.Context, opt IdleOptions) (IdleReport, error) {
	var rep IdleReport
	if opt.Minute <= 0 || opt.Lease <= 0 || opt.SessionMaxAge <= 0 || opt.Batch <= 0 {
		return rep, errors.New("device: StopIdle needs a minute, a lease, a session age and a batch")
	}
	holder, err := leaseHolder()
	if err != nil {
		return rep, err
	}
	if rep.Leased, err = s.takeLease(ctx, IdleLease, holder, opt.Lease); err != nil || !rep.Leased {
		return rep, err
	}
	defer s.releaseLease(ctx, IdleLease, holder)
	now := s.now()
	rows, err := s.pool.Query(ctx, `SELECT d.id::text FROM devices d WHERE `+idleWhere+`
		ORDER BY d.last_active_at NULLS FIRST, d.id LIMIT $4`, now, opt.Minute.Seconds(), now.Add(-opt.SessionMaxAge), opt.Batch)
	if err != nil {
		return rep, fmt.Errorf("find idle devices: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return rep, fmt.Errorf("find idle devices: %w", err)
	}
	for _, id := range ids {
		stopped, err := s.stopIfIdle(ctx, id, now, opt)
		if err != nil {
			return rep, err
		}
		if stopped {
			rep.Stopped++
		}
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM device_sessions WHERE coalesce(closed_at, opened_at) < $1`,
		now.Add(-opt.SessionMaxAge)); err != nil {
		return rep, fmt.Errorf("forget old sessions: %w", err)
	}
	return rep, nil
}

// stopIfIdle stops device id when, with its row locked, it is still running
// and idle at now.
func (s *Service) stopIfIdle(ctx context.Context, id string, now time.Time, opt IdleOptions) (bool, error) {
	stopped := false
	err := s.withDevice(ctx, id, func(tx pgx.Tx, d *Device) error {
		var idle bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM devices d WHERE d.id = $4 AND `+idleWhere+`)`,
			now, opt.Minute.Seconds(), now.Add(-opt.SessionMaxAge), id).Scan(&idle)
		if err != nil {
			return fmt.Errorf("check device %s idle: %w", id, err)
		}
		if !idle {
			return nil
		}
		s.transition(d, StateStopping, now)
		d.StopReason = deviceevents.ReasonIdle
		if err := command(ctx, tx, SourceIdleStop, d, deviceevents.OpStop, deviceevents.ReasonIdle); err != nil {
			return err
		}
		stopped = true
		return save(ctx, tx, d)
	})
	if apierr.Is(err, apierr.NotFound) {
		return false, nil
	}
	if stopped {
		s.log.InfoContext(ctx, "idle device stopped", "device_id", id, "reason", deviceevents.ReasonIdle)
	}
	return stopped, err
}

// takeLease makes holder the holder of lease name for ttl, unless another
// holder's lease has not expired; it reports whether holder holds it.
func (s *Service) takeLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	var got string
	err := s.pool.QueryRow(ctx, `
INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, now() + $3::float8 * interval '1 second')
ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
WHERE leases.expires_at <= now() OR leases.holder = EXCLUDED.holder
RETURNING holder`, name, holder, ttl.Seconds()).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("take lease %s: %w", name, err)
	}
	return true, nil
}

// releaseLease ends holder's lease name early, so the next run need not wait
// for it to expire. A failure is logged: the lease then expires on its own.
func (s *Service) releaseLease(ctx context.Context, name, holder string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := s.pool.Exec(ctx, `UPDATE leases SET expires_at = now() WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		s.log.WarnContext(ctx, "lease not released; it expires on its own", "lease", name, "err", err)
	}
}

// leaseHolder names one run: two runs of one instance exclude each other too.
func leaseHolder() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("lease holder: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
