package deviceruntime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/workqueue"
)

// Desired states of a device.
const (
	desiredRunning = "running"
	desiredStopped = "stopped"
	desiredDeleted = "deleted"
)

// Observed states of a device: what the runtime last established.
const (
	observedUnknown = "unknown"
	observedRunning = "running"
	observedStopped = "stopped"
	observedCrashed = "crashed"
	observedFailed  = "failed"
	observedRemoved = "removed"
)

// device is a row of runtime_devices.
type device struct {
	ID          string
	UserID      string
	NodeID      string
	DockerHost  string
	Image       string
	CPUCores    float64
	MemoryMB    int64
	StorageGB   int64
	ADBPort     int
	Name        string
	Desired     string
	Observed    string
	ContainerID string
	Recreations int
	Seq         int64
}

const deviceColumns = `device_id, user_id, node_id, docker_host, image, cpu_cores, memory_mb, storage_gb,
	adb_port, name, desired, observed, container_id, recreations, seq`

func scanDevice(row pgx.Row) (*device, error) {
	var d device
	err := row.Scan(&d.ID, &d.UserID, &d.NodeID, &d.DockerHost, &d.Image, &d.CPUCores, &d.MemoryMB, &d.StorageGB,
		&d.ADBPort, &d.Name, &d.Desired, &d.Observed, &d.ContainerID, &d.Recreations, &d.Seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return &d, err
}

// lockDevice returns the device's row locked for tx, waiting for another
// transaction holding it; nil when there is none.
func lockDevice(ctx context.Context, tx pgx.Tx, id string) (*device, error) {
	d, err := scanDevice(tx.QueryRow(ctx, `SELECT `+deviceColumns+` FROM runtime_devices WHERE device_id = $1 FOR UPDATE`, id))
	if err != nil {
		return nil, fmt.Errorf("lock device %s: %w", id, err)
	}
	return d, nil
}

// tryLockDevice is lockDevice without waiting: locked is false when another
// transaction holds the row.
func tryLockDevice(ctx context.Context, tx pgx.Tx, id string) (d *device, locked bool, err error) {
	rows, err := tx.Query(ctx, `SELECT `+deviceColumns+` FROM runtime_devices WHERE device_id = $1 FOR UPDATE SKIP LOCKED`, id)
	if err != nil {
		return nil, false, fmt.Errorf("lock device %s: %w", id, err)
	}
	defer rows.Close()
	if rows.Next() {
		d, err := scanDevice(rows)
		return d, err == nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	// No row visible: either none exists or it is locked (SKIP LOCKED hides
	// it). Tell the two apart.
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM runtime_devices WHERE device_id = $1)`, id).Scan(&exists); err != nil {
		return nil, false, err
	}
	return nil, !exists, nil
}

const saveDevice = `
INSERT INTO runtime_devices (` + deviceColumns + `)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
ON CONFLICT (device_id) DO UPDATE SET
	user_id = EXCLUDED.user_id, node_id = EXCLUDED.node_id, docker_host = EXCLUDED.docker_host,
	image = EXCLUDED.image, cpu_cores = EXCLUDED.cpu_cores, memory_mb = EXCLUDED.memory_mb,
	storage_gb = EXCLUDED.storage_gb, adb_port = EXCLUDED.adb_port, name = EXCLUDED.name,
	desired = EXCLUDED.desired, observed = EXCLUDED.observed, container_id = EXCLUDED.container_id,
	recreations = EXCLUDED.recreations, seq = EXCLUDED.seq, updated_at = now()`

func (d *device) save(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, saveDevice, d.ID, d.UserID, d.NodeID, d.DockerHost, d.Image, d.CPUCores, d.MemoryMB,
		d.StorageGB, d.ADBPort, d.Name, d.Desired, d.Observed, d.ContainerID, d.Recreations, d.Seq)
	if err != nil {
		return fmt.Errorf("save device %s: %w", d.ID, err)
	}
	return nil
}

// listDevices returns every device row (tombstones included), by id.
func listDevices(ctx context.Context, pool *pgxpool.Pool) (map[string]*device, error) {
	rows, err := pool.Query(ctx, `SELECT `+deviceColumns+` FROM runtime_devices`)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	out := map[string]*device{}
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		out[d.ID] = d
	}
	return out, rows.Err()
}

// pendingDevices returns the devices with a command not yet finished.
func pendingDevices(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, ids ...string) (map[string]bool, error) {
	sql := `SELECT DISTINCT device_id FROM runtime_commands WHERE status = 'pending'`
	args := []any{}
	if len(ids) > 0 {
		sql += ` AND device_id = ANY($1)`
		args = append(args, ids)
	}
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("list pending devices: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, rows.Err()
}

// queued is a claimed command.
type queued struct {
	ID         int64
	Op         string
	Event      event.Event
	Cmd        deviceevents.Command
	Attempts   int // failed attempts before this one
	ReceivedAt time.Time
}

const enqueue = `
INSERT INTO runtime_commands (event_source, event_id, device_id, op, event)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (event_source, event_id) DO NOTHING`

// commands is runtime_commands as a work queue: a command is claimed for the
// transaction that runs it (a process that dies mid-command gives it back),
// oldest first, and only when no older command of its device is unfinished,
// so a device's commands run one at a time in the order received. A command
// whose failure may pass is retried with backoff; one that fails for good,
// or too often, is finished as failed with a report, not parked: the device
// context has been told. Finished rows stay (done or failed) until pruned,
// so that a redelivered command is recognised and not run again.
var commands = workqueue.Queue{Table: "runtime_commands", Where: `NOT EXISTS (
	SELECT 1 FROM runtime_commands o
	WHERE o.device_id = runtime_commands.device_id AND o.status = 'pending' AND o.id < runtime_commands.id)`}

var claimNext = commands.ClaimLocked("id, op, event, attempts, received_at")

// claim returns the next command, locked within tx, or nil when none is due.
func claim(ctx context.Context, tx pgx.Tx) (*queued, error) {
	var (
		q   queued
		raw []byte
	)
	err := tx.QueryRow(ctx, claimNext, 1).Scan(&q.ID, &q.Op, &raw, &q.Attempts, &q.ReceivedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("claim a command: %w", err)
	}
	if err := json.Unmarshal(raw, &q.Event); err != nil {
		return nil, fmt.Errorf("decode command %d: %w", q.ID, err)
	}
	if err := q.Event.DataAs(&q.Cmd); err != nil {
		return nil, fmt.Errorf("decode command %d data: %w", q.ID, err)
	}
	return &q, nil
}

func finish(ctx context.Context, tx pgx.Tx, id int64, status, lastErr string) error {
	_, err := tx.Exec(ctx, `UPDATE runtime_commands SET status = $2, last_error = $3, attempts = attempts + 1,
		finished_at = now() WHERE id = $1`, id, status, lastErr)
	if err != nil {
		return fmt.Errorf("finish command %d: %w", id, err)
	}
	return nil
}

// retryLater records the failed attempt of command id, its attempts-th in
// all, and makes it due again after b's delay, which it returns.
func retryLater(ctx context.Context, tx pgx.Tx, b workqueue.Backoff, id int64, attempts int, cause error) (time.Duration, error) {
	var f workqueue.Failures
	_, wait := f.Add(b, id, attempts, cause, false)
	if _, err := tx.Exec(ctx, commands.Failed(), f.Args()...); err != nil {
		return 0, fmt.Errorf("postpone command %d: %w", id, err)
	}
	return wait, nil
}

// pruneCommands deletes finished commands older than keep.
func pruneCommands(ctx context.Context, pool *pgxpool.Pool, keep time.Duration) error {
	_, err := pool.Exec(ctx, `DELETE FROM runtime_commands WHERE status <> 'pending'
		AND finished_at < now() - $1 * interval '1 second'`, int64(keep.Seconds()))
	return err
}
