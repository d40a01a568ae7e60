package device

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/outbox"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// State is where a device is in its life.
//
//	creating → running ⇄ stopped        (stop: running → stopping → stopped;
//	                                      start: stopped → starting → running)
//	running → restarting → running
//	creating, starting, running, restarting, stopping → error (with the reason)
//	error → starting (start) · error → stopped (stop)
//	any → deleting → deleted
//
// The -ing states wait for device-runtime's report; a request that does not
// fit the current state is apierr Conflict.
type State string

// The states.
const (
	StateCreating   State = "creating"
	StateStarting   State = "starting"
	StateRunning    State = "running"
	StateRestarting State = "restarting"
	StateStopping   State = "stopping"
	StateStopped    State = "stopped"
	StateDeleting   State = "deleting"
	StateDeleted    State = "deleted"
	StateError      State = "error"
)

// States lists every state a device can be in.
var States = []State{StateCreating, StateStarting, StateRunning, StateRestarting, StateStopping, StateStopped,
	StateDeleting, StateDeleted, StateError}

// In reports whether s is one of states.
func (s State) In(states ...State) bool {
	for _, x := range states {
		if s == x {
			return true
		}
	}
	return false
}

// Limits of one device's request.
const (
	NameMax      = 64
	CPUCoresMax  = 256
	MemoryMBMin  = 128
	MemoryMBMax  = 1 << 20
	StorageGBMax = 1 << 16
)

var imagePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$`)

// Device is a cloud phone as the API shows it.
type Device struct {
	ID             string     `json:"id"`
	UserID         string     `json:"user_id"`
	Name           string     `json:"name"`
	State          State      `json:"state"`
	NodeID         string     `json:"node_id"`
	NodeName       string     `json:"node_name"`
	Image          string     `json:"image"`
	CPUCores       int        `json:"cpu_cores"`
	MemoryMB       int        `json:"memory_mb"`
	StorageGB      int        `json:"storage_gb"`
	ADBPort        int        `json:"adb_port"`
	ContainerID    string     `json:"container_id,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	StopReason     string     `json:"stop_reason,omitempty"`
	RunningSince   *time.Time `json:"running_since,omitempty"`
	StateChangedAt time.Time  `json:"state_changed_at"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	DeletedAt      *time.Time `json:"deleted_at,omitempty"`
	// IdleMinutes is how long the device may run unused (no ADB session, no
	// shell, screenshot or log use) before it is stopped with reason idle;
	// it is the user's limit when the device last took a running slot.
	IdleMinutes int `json:"idle_minutes"`
	// LastActiveAt is when it was last started or used.
	LastActiveAt *time.Time `json:"last_active_at,omitempty"`

	dockerHost   string
	adbHost      string
	holdsSlot    bool
	opSeq        int64
	lastReportAt *time.Time
}

const selectDevices = `
SELECT d.id::text, d.user_id::text, d.name, d.state, d.node_id::text, n.name, n.docker_host, n.adb_host,
    d.image, d.cpu_cores, d.memory_mb, d.storage_gb, d.adb_port, d.container_id, d.last_error, d.stop_reason,
    d.holds_slot, d.op_seq, d.last_report_at, d.running_since, d.state_changed_at, d.created_at, d.updated_at,
    d.deleted_at, d.idle_minutes, d.last_active_at
FROM devices d JOIN nodes n ON n.id = d.node_id`

func scanDevice(row pgx.Row) (Device, error) {
	var d Device
	err := row.Scan(&d.ID, &d.UserID, &d.Name, &d.State, &d.NodeID, &d.NodeName, &d.dockerHost, &d.adbHost,
		&d.Image, &d.CPUCores, &d.MemoryMB, &d.StorageGB, &d.ADBPort, &d.ContainerID, &d.LastError, &d.StopReason,
		&d.holdsSlot, &d.opSeq, &d.lastReportAt, &d.RunningSince, &d.StateChangedAt, &d.CreatedAt, &d.UpdatedAt,
		&d.DeletedAt, &d.IdleMinutes, &d.LastActiveAt)
	return d, err
}

const saveDevice = `
UPDATE devices SET state = $2, container_id = $3, last_error = $4, stop_reason = $5, holds_slot = $6,
    op_seq = $7, last_report_at = $8, running_since = $9, state_changed_at = $10, deleted_at = $11,
    idle_minutes = $12, last_active_at = $13, updated_at = now()
WHERE id = $1
RETURNING updated_at`

// save writes d's mutable fields.
func save(ctx context.Context, tx pgx.Tx, d *Device) error {
	err := tx.QueryRow(ctx, saveDevice, d.ID, d.State, d.ContainerID, d.LastError, d.StopReason, d.holdsSlot,
		d.opSeq, d.lastReportAt, d.RunningSince, d.StateChangedAt, d.DeletedAt, d.IdleMinutes, d.LastActiveAt).Scan(&d.UpdatedAt)
	if err != nil {
		return fmt.Errorf("save device %s: %w", d.ID, err)
	}
	return nil
}

// errNotFound is the answer for a device that does not exist or is not the
// caller's: the two are not told apart.
func errNotFound() error { return apierr.New(apierr.NotFound, "device not found") }

// withDevice runs fn in one transaction with device id's row locked. A
// device that does not exist is apierr NotFound.
func (s *Service) withDevice(ctx context.Context, id string, fn func(tx pgx.Tx, d *Device) error) error {
	if !validate.UUID(id) {
		return errNotFound()
	}
	return db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		d, err := scanDevice(tx.QueryRow(ctx, selectDevices+` WHERE d.id = $1 FOR UPDATE OF d`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return errNotFound()
		}
		if err != nil {
			return fmt.Errorf("lock device %s: %w", id, err)
		}
		return fn(tx, &d)
	})
}

// command writes the command op for d, from source, to the outbox within tx
// and advances d's sequence; the caller saves d.
func command(ctx context.Context, tx pgx.Tx, source string, d *Device, op, reason string) error {
	d.opSeq++
	typ := deviceevents.CommandType(op)
	e, err := events.New(ctx, typ, source, d.ID, deviceevents.Command{
		SchemaVersion: 1, DeviceID: d.ID, UserID: d.UserID, NodeID: d.NodeID, DockerHost: d.dockerHost,
		Image: d.Image, CPUCores: float64(d.CPUCores), MemoryMB: d.MemoryMB, StorageGB: d.StorageGB, ADBPort: d.ADBPort,
		Name: d.Name, Op: op, Seq: d.opSeq, Reason: reason,
	})
	if err != nil {
		return err
	}
	return outbox.Add(ctx, tx, e)
}

// fact writes a fact about d to the outbox within tx.
func fact(ctx context.Context, tx pgx.Tx, typ, source string, d *Device, data any) error {
	e, err := events.New(ctx, typ, source, d.ID, data)
	if err != nil {
		return err
	}
	return outbox.Add(ctx, tx, e)
}

// conflict is the refusal of a request that does not fit d's state.
func conflict(d *Device, what string) error {
	return apierr.New(apierr.Conflict, "cannot %s a device that is %s", what, d.State)
}
