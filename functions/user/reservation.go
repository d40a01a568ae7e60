package user

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// Upper bounds of one device's request, far above any plan, so that sums
// never overflow.
const (
	DeviceCPUCoresMax  = 1024
	DeviceMemoryMBMax  = 1 << 22
	DeviceStorageGBMax = 1 << 16
)

// isExternalID reports whether s is 1 to 64 of [A-Za-z0-9_.:-], the form of
// the ids other contexts give (a device's, a grant's).
func isExternalID(s string) bool {
	return len(s) >= 1 && len(s) <= 64 && onlyOf(s, "_.:-")
}

// onlyOf reports whether every byte of s is an ASCII letter, a digit or one
// of extra. (By hand rather than with regexps: compiling them at init would
// delay every start of the context's functions.)
func onlyOf(s, extra string) bool {
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

// ReserveRequest is the body of POST /internal/v1/quotas/{user_id}/reserve.
type ReserveRequest struct {
	DeviceID  string `json:"device_id"`
	CPUCores  int    `json:"cpu_cores"`
	MemoryMB  int    `json:"memory_mb"`
	StorageGB int    `json:"storage_gb"`
}

// Validate returns an apierr Invalid listing every fault of req: device_id
// 1–64 of [A-Za-z0-9_.:-], cpu_cores and memory_mb positive, storage_gb not
// negative, each within its upper bound.
func (req ReserveRequest) Validate() error {
	var p validate.Problems
	p.Check(isExternalID(req.DeviceID), "device_id", "must be 1 to 64 of A-Z a-z 0-9 _ . : -")
	p.Check(req.CPUCores >= 1 && req.CPUCores <= DeviceCPUCoresMax, "cpu_cores", fmt.Sprintf("must be 1 to %d", DeviceCPUCoresMax))
	p.Check(req.MemoryMB >= 1 && req.MemoryMB <= DeviceMemoryMBMax, "memory_mb", fmt.Sprintf("must be 1 to %d", DeviceMemoryMBMax))
	p.Check(req.StorageGB >= 0 && req.StorageGB <= DeviceStorageGBMax, "storage_gb", fmt.Sprintf("must be 0 to %d", DeviceStorageGBMax))
	return p.Err()
}

// DeviceRequest is the body of the release, start and stop routes.
type DeviceRequest struct {
	DeviceID string `json:"device_id"`
}

// Validate checks device_id's shape.
func (req DeviceRequest) Validate() error {
	var p validate.Problems
	p.Check(isExternalID(req.DeviceID), "device_id", "must be 1 to 64 of A-Z a-z 0-9 _ . : -")
	return p.Err()
}

// Reservation is the quota one device holds.
type Reservation struct {
	DeviceID  string    `json:"device_id"`
	UserID    string    `json:"user_id"`
	CPUCores  int       `json:"cpu_cores"`
	MemoryMB  int       `json:"memory_mb"`
	StorageGB int       `json:"storage_gb"`
	Running   bool      `json:"running"`
	CreatedAt time.Time `json:"created_at"`
}

// DeviceState is the answer to release, start and stop: whether the device
// holds a reservation and whether it counts as running. The answer to start
// also carries the user's idle limit, which the device context applies to
// the run it starts.
type DeviceState struct {
	DeviceID    string `json:"device_id"`
	Reserved    bool   `json:"reserved"`
	Running     bool   `json:"running"`
	IdleMinutes int    `json:"idle_minutes,omitempty"`
}

const selectReservation = `
SELECT device_id, user_id::text, cpu_cores, memory_mb, storage_gb, running, created_at
FROM quota_reservations WHERE device_id = $1`

const insertReservation = `
INSERT INTO quota_reservations (device_id, user_id, cpu_cores, memory_mb, storage_gb)
VALUES ($1, $2, $3, $4, $5)
RETURNING device_id, user_id::text, cpu_cores, memory_mb, storage_gb, running, created_at`

const addUsage = `
UPDATE quotas SET used_devices = used_devices + $2, used_running_devices = used_running_devices + $3,
    used_cpu_cores = used_cpu_cores + $4, used_memory_mb = used_memory_mb + $5,
    used_storage_gb = used_storage_gb + $6, updated_at = now()
WHERE user_id = $1`

const deleteReservation = `
DELETE FROM quota_reservations WHERE device_id = $1 AND user_id = $2
RETURNING cpu_cores, memory_mb, storage_gb, running`

const setRunning = `
UPDATE quota_reservations SET running = $3, updated_at = now() WHERE device_id = $1 AND user_id = $2`

func scanReservation(row pgx.Row) (Reservation, error) {
	var r Reservation
	err := row.Scan(&r.DeviceID, &r.UserID, &r.CPUCores, &r.MemoryMB, &r.StorageGB, &r.Running, &r.CreatedAt)
	return r, err
}

// exceeded is a refusal for lack of quota: the error the caller gets and the
// notification recorded for it.
type exceeded struct {
	limit              string
	requested, allowed int
}

func (x exceeded) err() error {
	return apierr.New(apierr.QuotaExceeded, "quota exceeded: %s is %d, this would need %d", x.limit, x.allowed, x.requested)
}

// check returns the first limit that q would break if it also held req, or
// nil.
func check(q Quota, req ReserveRequest) *exceeded {
	l, u := q.Limits, q.Usage
	for _, c := range []exceeded{
		{"device_max_cpu_cores", req.CPUCores, l.DeviceMaxCPUCores},
		{"device_max_memory_mb", req.MemoryMB, l.DeviceMaxMemoryMB},
		{"max_devices", u.Devices + 1, l.MaxDevices},
		{"max_cpu_cores", u.CPUCores + req.CPUCores, l.MaxCPUCores},
		{"max_memory_mb", u.MemoryMB + req.MemoryMB, l.MaxMemoryMB},
		{"max_storage_gb", u.StorageGB + req.StorageGB, l.MaxStorageGB},
	} {
		if c.requested > c.allowed {
			return &c
		}
	}
	return nil
}

// withQuota runs fn in one transaction with userID's quotas row locked and
// its effective quota read; it returns apierr NotFound when the user has no
// quota. Every change of usage goes through here, so changes of one user are
// serialised and never check one state and count against another.
func (s *Service) withQuota(ctx context.Context, userID string, fn func(tx pgx.Tx, q Quota) error) error {
	if !validate.UUID(userID) {
		return apierr.New(apierr.NotFound, "quota not found")
	}
	return db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		q, err := scanQuota(tx.QueryRow(ctx, lockQuota, userID))
		if errors.Is(err, pgx.ErrNoRows) {
			return apierr.New(apierr.NotFound, "quota not found")
		}
		if err != nil {
			return fmt.Errorf("lock quota of %s: %w", userID, err)
		}
		return fn(tx, q)
	})
}

// Reserve records that device req.DeviceID of userID holds req's resources,
// checking in one transaction, with the quota row locked, the per-device caps,
// the device count and the cpu, memory and storage totals against the
// effective limits. It is idempotent by device id: a repeated reserve with the
// same amounts returns the same reservation and counts once; the same device
// id with other amounts, or of another user, is apierr Conflict. A refusal is
// apierr QuotaExceeded naming the limit, and records EventQuotaExceeded. An
// unknown user is apierr NotFound.
func (s *Service) Reserve(ctx context.Context, userID string, req ReserveRequest) (Reservation, error) {
	if err := req.Validate(); err != nil {
		return Reservation{}, err
	}
	var (
		res     Reservation
		refusal *exceeded
	)
	err := s.withQuota(ctx, userID, func(tx pgx.Tx, q Quota) error {
		old, err := scanReservation(tx.QueryRow(ctx, selectReservation, req.DeviceID))
		switch {
		case err == nil:
			if old.UserID != userID || old.CPUCores != req.CPUCores || old.MemoryMB != req.MemoryMB || old.StorageGB != req.StorageGB {
				return apierr.New(apierr.Conflict, "device %s already holds a different reservation", req.DeviceID)
			}
			res = old
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("read reservation of device %s: %w", req.DeviceID, err)
		}
		if refusal = check(q, req); refusal != nil {
			return nil
		}
		res, err = scanReservation(tx.QueryRow(ctx, insertReservation, req.DeviceID, userID, req.CPUCores, req.MemoryMB, req.StorageGB))
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == uniqueViolation {
				// The same device id reserved for another user meanwhile.
				return apierr.Wrap(apierr.Conflict, err, "device %s already holds a different reservation", req.DeviceID)
			}
			return fmt.Errorf("insert reservation of device %s: %w", req.DeviceID, err)
		}
		if _, err := tx.Exec(ctx, addUsage, userID, 1, 0, req.CPUCores, req.MemoryMB, req.StorageGB); err != nil {
			return fmt.Errorf("count reservation of device %s: %w", req.DeviceID, err)
		}
		return nil
	})
	if err != nil {
		return Reservation{}, err
	}
	if refusal != nil {
		return Reservation{}, s.refuse(ctx, userID, req.DeviceID, *refusal)
	}
	return res, nil
}

// refuse records EventQuotaExceeded for a refused request (in a transaction
// of its own: the refusal changed nothing) and returns the refusal's error.
// Failing to record the notification does not change the answer.
func (s *Service) refuse(ctx context.Context, userID, deviceID string, x exceeded) error {
	err := db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		ev, err := events.New(ctx, userevents.EventQuotaExceeded, SourceQuotaInternal, userID, userevents.QuotaExceeded{
			SchemaVersion: 1, UserID: userID, DeviceID: deviceID, Limit: x.limit, Requested: x.requested, Allowed: x.allowed,
		})
		if err != nil {
			return err
		}
		return outbox.Add(ctx, tx, ev)
	})
	if err != nil {
		s.log.ErrorContext(ctx, "quota exceeded notification not recorded", "user_id", userID, "err", err)
	}
	s.log.InfoContext(ctx, "quota exceeded", "user_id", userID, "device_id", deviceID, "limit", x.limit)
	return x.err()
}

// Release deletes the reservation of deviceID held by userID and takes its
// resources (and its running slot, if it was running) off the counters, in
// one transaction. Releasing a device with no reservation of userID changes
// nothing and is not an error. An unknown user is apierr NotFound.
func (s *Service) Release(ctx context.Context, userID string, req DeviceRequest) (DeviceState, error) {
	if err := req.Validate(); err != nil {
		return DeviceState{}, err
	}
	st := DeviceState{DeviceID: req.DeviceID}
	err := s.withQuota(ctx, userID, func(tx pgx.Tx, _ Quota) error {
		var cpu, mem, storage int
		var running bool
		err := tx.QueryRow(ctx, deleteReservation, req.DeviceID, userID).Scan(&cpu, &mem, &storage, &running)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("delete reservation of device %s: %w", req.DeviceID, err)
		}
		run := 0
		if running {
			run = 1
		}
		if _, err := tx.Exec(ctx, addUsage, userID, -1, -run, -cpu, -mem, -storage); err != nil {
			return fmt.Errorf("uncount reservation of device %s: %w", req.DeviceID, err)
		}
		return nil
	})
	return st, err
}

// Start counts the reserved device deviceID of userID as running, checking
// the running-devices limit with the quota row locked. It is idempotent: a
// device already running is answered as it is. A device without a reservation
// of userID is apierr NotFound; a refusal is apierr QuotaExceeded and records
// EventQuotaExceeded.
func (s *Service) Start(ctx context.Context, userID string, req DeviceRequest) (DeviceState, error) {
	return s.setRunning(ctx, userID, req, true)
}

// Stop stops counting the device deviceID of userID as running. It is
// idempotent, and a device without a reservation of userID (released
// already, say) is answered as not reserved, not as an error.
func (s *Service) Stop(ctx context.Context, userID string, req DeviceRequest) (DeviceState, error) {
	return s.setRunning(ctx, userID, req, false)
}

func (s *Service) setRunning(ctx context.Context, userID string, req DeviceRequest, running bool) (DeviceState, error) {
	if err := req.Validate(); err != nil {
		return DeviceState{}, err
	}
	st := DeviceState{DeviceID: req.DeviceID}
	var refusal *exceeded
	err := s.withQuota(ctx, userID, func(tx pgx.Tx, q Quota) error {
		r, err := scanReservation(tx.QueryRow(ctx, selectReservation+` AND user_id = $2 FOR UPDATE`, req.DeviceID, userID))
		if errors.Is(err, pgx.ErrNoRows) {
			if running {
				return apierr.New(apierr.NotFound, "device %s holds no reservation", req.DeviceID)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read reservation of device %s: %w", req.DeviceID, err)
		}
		st.Reserved, st.Running = true, r.Running
		if running {
			st.IdleMinutes = q.Limits.IdleMinutes
		}
		if r.Running == running {
			return nil
		}
		delta := -1
		if running {
			if q.Usage.RunningDevices+1 > q.Limits.MaxRunningDevices {
				refusal = &exceeded{"max_running_devices", q.Usage.RunningDevices + 1, q.Limits.MaxRunningDevices}
				return nil
			}
			delta = 1
		}
		if _, err := tx.Exec(ctx, setRunning, req.DeviceID, userID, running); err != nil {
			return fmt.Errorf("mark device %s running=%t: %w", req.DeviceID, running, err)
		}
		if _, err := tx.Exec(ctx, addUsage, userID, 0, delta, 0, 0, 0); err != nil {
			return fmt.Errorf("count device %s running=%t: %w", req.DeviceID, running, err)
		}
		st.Running = running
		return nil
	})
	if err != nil {
		return DeviceState{}, err
	}
	if refusal != nil {
		return DeviceState{}, s.refuse(ctx, userID, req.DeviceID, *refusal)
	}
	return st, nil
}
