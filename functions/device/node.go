package device

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// Node statuses: a draining node keeps its devices but gets no new ones.
const (
	NodeActive   = "active"
	NodeDraining = "draining"
)

// Node health, as device-runtime finds the node's engine: a node is down
// once its engine has not answered for DEVICE_NODE_DOWN_AFTER, and gets no
// new devices until it answers again.
const (
	NodeUp   = "up"
	NodeDown = "down"
)

// ReasonNodeDown is the last_error of a device in error because its node
// is down; it runs again when the node answers.
const ReasonNodeDown = "node_down"

// Placement strategies (DEVICE_PLACEMENT): spread puts a phone on the least
// loaded node with room, pack on the most loaded one.
const (
	PlacementSpread = "spread"
	PlacementPack   = "pack"
)

// Node is a device host as the admin API shows it. Allocated* is what its
// devices that are not deleted hold; Devices counts them.
type Node struct {
	ID                string            `json:"id"`
	Name              string            `json:"name"`
	DockerHost        string            `json:"docker_host"`
	ADBHost           string            `json:"adb_host"`
	CPUCores          int               `json:"cpu_cores"`
	MemoryMB          int               `json:"memory_mb"`
	Labels            map[string]string `json:"labels"`
	AllocatedCPUCores int               `json:"allocated_cpu_cores"`
	AllocatedMemoryMB int               `json:"allocated_memory_mb"`
	Devices           int               `json:"devices"`
	Status            string            `json:"status"`
	// Health is up or down; HealthError says why a down node is down.
	Health          string    `json:"health"`
	HealthError     string    `json:"health_error,omitempty"`
	HealthChangedAt time.Time `json:"health_changed_at"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
	// MovedDevices is, in the answer of a drain with move_stopped, how many
	// stopped devices went to other nodes.
	MovedDevices int `json:"moved_devices,omitempty"`
}

const insertNode = `
INSERT INTO nodes (name, docker_host, adb_host, cpu_cores, memory_mb, labels) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING`

// RegisterNode adds n unless a node of its name (or engine) exists (an
// existing node keeps what an admin set).
func (s *Service) RegisterNode(ctx context.Context, n NodeConfig) error {
	if n.Name == "" || len(n.Name) > 64 || n.DockerHost == "" || n.ADBHost == "" || n.CPUCores < 0 || n.MemoryMB < 0 {
		return fmt.Errorf("device: node %+v needs a name (1-64), a Docker host, an ADB host and capacities ≥ 0", n)
	}
	if _, err := s.pool.Exec(ctx, insertNode, n.Name, n.DockerHost, n.ADBHost, n.CPUCores, n.MemoryMB, map[string]string{}); err != nil {
		return fmt.Errorf("register node %s: %w", n.Name, err)
	}
	return nil
}

// NodeRegistration is the body of POST /api/v1/admin/nodes: a device host
// to add. DockerHost is unix:///path or tcp://host:port (TLS: the client
// files are ca.pem, cert.pem and key.pem in DEVICE_DOCKER_CERT_DIR/<name>/);
// ADBHost is the address the ADB gateway reaches the node's phones at.
type NodeRegistration struct {
	Name       string            `json:"name"`
	DockerHost string            `json:"docker_host"`
	ADBHost    string            `json:"adb_host"`
	CPUCores   int               `json:"cpu_cores"`
	MemoryMB   int               `json:"memory_mb"`
	Labels     map[string]string `json:"labels"`
}

var (
	nodeNamePattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	dockerHostPattern = regexp.MustCompile(`^(unix:///[^\s]+|tcp://[A-Za-z0-9.:\[\]-]+:[0-9]{1,5})$`)
	adbHostPattern    = regexp.MustCompile(`^[A-Za-z0-9.:\[\]-]{1,253}$`)
	labelKeyPattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9._/-]{0,62}$`)
	labelValuePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{0,63}$`)
)

// MaxLabels bounds the labels of a node and those a phone asks for.
const MaxLabels = 16

// checkLabels adds to p the faults of labels (field name field).
func checkLabels(p *validate.Problems, field string, labels map[string]string) {
	p.Check(len(labels) <= MaxLabels, field, fmt.Sprintf("at most %d labels", MaxLabels))
	for k, v := range labels {
		if !labelKeyPattern.MatchString(k) || !labelValuePattern.MatchString(v) {
			p.Add(field, "keys are 1-63 of a-z 0-9 . _ / - (lower case first), values 0-63 of A-Z a-z 0-9 . _ -")
			return
		}
	}
}

// Validate returns an apierr Invalid listing every fault of r.
func (r NodeRegistration) Validate() error {
	var p validate.Problems
	p.Check(nodeNamePattern.MatchString(r.Name), "name", "must be 1-64 of A-Z a-z 0-9 _ . - (a letter or digit first)")
	p.Check(dockerHostPattern.MatchString(r.DockerHost), "docker_host", "must be unix:///path or tcp://host:port")
	p.Check(adbHostPattern.MatchString(r.ADBHost), "adb_host", "must be a host name or address")
	p.Check(r.CPUCores >= 0 && r.CPUCores <= 1<<20, "cpu_cores", "must be 0 to 1048576")
	p.Check(r.MemoryMB >= 0 && r.MemoryMB <= 1<<30, "memory_mb", "must be 0 to 1073741824")
	checkLabels(&p, "labels", r.Labels)
	return p.Err()
}

// EngineCheck checks the Docker engine of a node about to be registered
// (reachable, a recent enough API, TLS material for tcp://) and returns an
// apierr error that says what failed.
type EngineCheck func(ctx context.Context, name, dockerHost string) error

// AddNode registers a device host after check passed for its engine. A name
// or engine another node has is apierr Conflict.
func (s *Service) AddNode(ctx context.Context, r NodeRegistration, check EngineCheck) (Node, error) {
	if err := r.Validate(); err != nil {
		return Node{}, err
	}
	if r.Labels == nil {
		r.Labels = map[string]string{}
	}
	var taken string
	err := s.pool.QueryRow(ctx, `SELECT name FROM nodes WHERE deleted_at IS NULL AND (name = $1 OR docker_host = $2) LIMIT 1`,
		r.Name, r.DockerHost).Scan(&taken)
	switch {
	case err == nil:
		return Node{}, apierr.New(apierr.Conflict, "node %s has that name or Docker host already", taken)
	case !errors.Is(err, pgx.ErrNoRows):
		return Node{}, fmt.Errorf("look up node %s: %w", r.Name, err)
	}
	if check != nil {
		if err := check(ctx, r.Name, r.DockerHost); err != nil {
			return Node{}, err
		}
	}
	var id string
	err = s.pool.QueryRow(ctx, `INSERT INTO nodes (name, docker_host, adb_host, cpu_cores, memory_mb, labels)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id::text`,
		r.Name, r.DockerHost, r.ADBHost, r.CPUCores, r.MemoryMB, r.Labels).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return Node{}, apierr.New(apierr.Conflict, "a node of that name or Docker host was registered meanwhile")
	}
	if err != nil {
		return Node{}, fmt.Errorf("register node %s: %w", r.Name, err)
	}
	s.log.InfoContext(ctx, "node registered", "node_id", id, "name", r.Name, "docker_host", r.DockerHost)
	return scanNode(s.pool.QueryRow(ctx, selectNodes+` WHERE n.id = $1`, id))
}

// DeleteNode removes node id from the platform. Only a node with no device
// (every phone deleted or moved away, see NodeUpdate.MoveStopped) can go;
// otherwise it is apierr Conflict. An unknown node is apierr NotFound. The
// node's row is kept for the deleted devices that name it; its name and
// engine may be registered again.
func (s *Service) DeleteNode(ctx context.Context, id string) error {
	if !validate.UUID(id) {
		return apierr.New(apierr.NotFound, "node not found")
	}
	return db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM nodes WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`, id).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return apierr.New(apierr.NotFound, "node not found")
		}
		if err != nil {
			return fmt.Errorf("lock node %s: %w", id, err)
		}
		var live int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM devices WHERE node_id = $1 AND state <> 'deleted'`, id).Scan(&live); err != nil {
			return fmt.Errorf("count devices of node %s: %w", id, err)
		}
		if live > 0 {
			return apierr.New(apierr.Conflict, "the node holds %d devices: drain it (status draining, move_stopped) "+
				"and let its phones be stopped and moved or deleted first", live)
		}
		if _, err := tx.Exec(ctx, `UPDATE nodes SET deleted_at = now(), updated_at = now() WHERE id = $1`, id); err != nil {
			return fmt.Errorf("delete node %s: %w", id, err)
		}
		s.log.InfoContext(ctx, "node deleted", "node_id", id, "status", status)
		return nil
	})
}

const selectNodes = `
SELECT n.id::text, n.name, n.docker_host, n.adb_host, n.cpu_cores, n.memory_mb, n.labels, n.allocated_cpu_cores,
    n.allocated_memory_mb, (SELECT count(*) FROM devices d WHERE d.node_id = n.id AND d.state <> 'deleted'),
    n.status, n.health, n.health_error, n.health_changed_at, n.created_at, n.updated_at
FROM nodes n`

func scanNode(row pgx.Row) (Node, error) {
	var n Node
	err := row.Scan(&n.ID, &n.Name, &n.DockerHost, &n.ADBHost, &n.CPUCores, &n.MemoryMB, &n.Labels, &n.AllocatedCPUCores,
		&n.AllocatedMemoryMB, &n.Devices, &n.Status, &n.Health, &n.HealthError, &n.HealthChangedAt, &n.CreatedAt, &n.UpdatedAt)
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	return n, err
}

// Nodes lists every node (but deleted ones) by name.
func (s *Service) Nodes(ctx context.Context) ([]Node, error) {
	rows, err := s.pool.Query(ctx, selectNodes+` WHERE n.deleted_at IS NULL ORDER BY n.name`)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Node, error) { return scanNode(r) })
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return out, nil
}

// NodeUpdate is the body of PUT /api/v1/admin/nodes/{id}: the fields to
// change. MoveStopped, on a draining node (or one set draining), places
// its stopped devices on other nodes: each keeps its port and starts there
// next time, in a new container (what the old one held is not carried).
type NodeUpdate struct {
	CPUCores    *int               `json:"cpu_cores"`
	MemoryMB    *int               `json:"memory_mb"`
	Status      *string            `json:"status"`
	Labels      *map[string]string `json:"labels"`
	MoveStopped bool               `json:"move_stopped"`
}

// Validate returns an apierr Invalid listing every fault of u.
func (u NodeUpdate) Validate() error {
	var p validate.Problems
	p.Check(u.CPUCores != nil || u.MemoryMB != nil || u.Status != nil || u.Labels != nil || u.MoveStopped, "body", "names nothing to change")
	p.Check(u.CPUCores == nil || (*u.CPUCores >= 0 && *u.CPUCores <= 1<<20), "cpu_cores", "must be 0 to 1048576")
	p.Check(u.MemoryMB == nil || (*u.MemoryMB >= 0 && *u.MemoryMB <= 1<<30), "memory_mb", "must be 0 to 1073741824")
	p.Check(u.Status == nil || *u.Status == NodeActive || *u.Status == NodeDraining, "status", "must be active or draining")
	if u.Labels != nil {
		checkLabels(&p, "labels", *u.Labels)
	}
	return p.Err()
}

const updateNode = `
UPDATE nodes SET cpu_cores = coalesce($2, cpu_cores), memory_mb = coalesce($3, memory_mb),
    status = coalesce($4, status), labels = coalesce($5, labels), updated_at = now()
WHERE id = $1 AND deleted_at IS NULL
RETURNING status`

// UpdateNode changes node id's capacity, status or labels, and moves its
// stopped devices away when asked (only from a draining node). Capacity may
// be set below what is allocated: existing devices stay, new ones go
// elsewhere. An unknown node is apierr NotFound.
func (s *Service) UpdateNode(ctx context.Context, id string, u NodeUpdate) (Node, error) {
	if err := u.Validate(); err != nil {
		return Node{}, err
	}
	if !validate.UUID(id) {
		return Node{}, apierr.New(apierr.NotFound, "node not found")
	}
	var labels any
	if u.Labels != nil {
		labels = *u.Labels
		if *u.Labels == nil {
			labels = map[string]string{}
		}
	}
	var n Node
	moved := 0
	err := db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, updateNode, id, u.CPUCores, u.MemoryMB, u.Status, labels).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return apierr.New(apierr.NotFound, "node not found")
		}
		if err != nil {
			return fmt.Errorf("update node %s: %w", id, err)
		}
		if u.MoveStopped {
			if status != NodeDraining {
				return apierr.New(apierr.Conflict, "only a draining node's stopped devices are moved (set status draining)")
			}
			if moved, err = s.moveStopped(ctx, tx, id); err != nil {
				return err
			}
		}
		n, err = scanNode(tx.QueryRow(ctx, selectNodes+` WHERE n.id = $1`, id))
		return err
	})
	n.MovedDevices = moved
	return n, err
}

// moveStopped places each stopped device of node id on another node within
// tx; a device no node has room for stays. It returns how many moved.
func (s *Service) moveStopped(ctx context.Context, tx pgx.Tx, id string) (int, error) {
	rows, err := tx.Query(ctx, selectDevices+` WHERE d.node_id = $1 AND d.state = 'stopped' ORDER BY d.created_at FOR UPDATE OF d`, id)
	if err != nil {
		return 0, fmt.Errorf("lock stopped devices of node %s: %w", id, err)
	}
	devs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Device, error) { return scanDevice(r) })
	if err != nil {
		return 0, fmt.Errorf("lock stopped devices of node %s: %w", id, err)
	}
	moved := 0
	for i := range devs {
		d := &devs[i]
		// A savepoint per device: one that finds no room leaves the others.
		sp, err := tx.Begin(ctx)
		if err != nil {
			return moved, err
		}
		var labels map[string]string
		if err := sp.QueryRow(ctx, `SELECT node_labels FROM devices WHERE id = $1`, d.ID).Scan(&labels); err != nil {
			_ = sp.Rollback(ctx)
			return moved, fmt.Errorf("read device %s: %w", d.ID, err)
		}
		to, err := place(ctx, sp, d.CPUCores, d.MemoryMB, labels, s.pack)
		if apierr.Is(err, apierr.Unavailable) {
			_ = sp.Rollback(ctx)
			continue
		}
		if err == nil {
			err = unplace(ctx, sp, d)
		}
		if err == nil {
			_, err = sp.Exec(ctx, `UPDATE devices SET node_id = $2, container_id = '', updated_at = now() WHERE id = $1`, d.ID, to)
		}
		if err == nil {
			err = sp.Commit(ctx)
		}
		if err != nil {
			_ = sp.Rollback(ctx)
			return moved, fmt.Errorf("move device %s: %w", d.ID, err)
		}
		s.log.InfoContext(ctx, "stopped device moved off a draining node", "device_id", d.ID, "from", id, "to", to)
		moved++
	}
	return moved, nil
}

// candidateNodes lists active, healthy nodes with room for cpu and memory
// and every label asked for ($3), least loaded first (spread) or most
// loaded first (pack, $4).
const candidateNodes = `
SELECT id::text FROM nodes
WHERE status = 'active' AND health = 'up' AND deleted_at IS NULL AND labels @> $3
  AND cpu_cores - allocated_cpu_cores >= $1 AND memory_mb - allocated_memory_mb >= $2
ORDER BY CASE WHEN $4 THEN -1 ELSE 1 END *
    ((allocated_cpu_cores::float8 / greatest(cpu_cores, 1)) + (allocated_memory_mb::float8 / greatest(memory_mb, 1))), name
LIMIT 20`

// allocateOnNode takes cpu and memory on one node if it is still active,
// healthy and has room, as checked after its row lock is taken.
const allocateOnNode = `
UPDATE nodes SET allocated_cpu_cores = allocated_cpu_cores + $2, allocated_memory_mb = allocated_memory_mb + $3,
    updated_at = now()
WHERE id = $1 AND status = 'active' AND health = 'up' AND deleted_at IS NULL
  AND cpu_cores - allocated_cpu_cores >= $2 AND memory_mb - allocated_memory_mb >= $3
RETURNING id::text`

// place takes cpu and memory on an active, healthy node with room and the
// labels asked for, within tx, and returns its id: the least loaded one, or
// with pack the most loaded one. None is apierr Unavailable. Each candidate
// is taken with a conditional update, so concurrent placements never
// overfill a node.
func place(ctx context.Context, tx pgx.Tx, cpu, memory int, labels map[string]string, pack bool) (string, error) {
	if labels == nil {
		labels = map[string]string{}
	}
	rows, err := tx.Query(ctx, candidateNodes, cpu, memory, labels, pack)
	if err != nil {
		return "", fmt.Errorf("find a node: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", fmt.Errorf("find a node: %w", err)
	}
	for _, id := range ids {
		var got string
		err := tx.QueryRow(ctx, allocateOnNode, id, cpu, memory).Scan(&got)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("allocate on node %s: %w", id, err)
		}
		return got, nil
	}
	if len(labels) > 0 {
		return "", apierr.New(apierr.Unavailable, "no device host with labels %v has room for %d cores and %d MB now", labels, cpu, memory)
	}
	return "", apierr.New(apierr.Unavailable, "no device host has room for %d cores and %d MB now", cpu, memory)
}

const freeOnNode = `
UPDATE nodes SET allocated_cpu_cores = greatest(allocated_cpu_cores - $2, 0),
    allocated_memory_mb = greatest(allocated_memory_mb - $3, 0), updated_at = now()
WHERE id = $1`

// unplace gives d's cpu and memory back to its node within tx.
func unplace(ctx context.Context, tx pgx.Tx, d *Device) error {
	if _, err := tx.Exec(ctx, freeOnNode, d.NodeID, d.CPUCores, d.MemoryMB); err != nil {
		return fmt.Errorf("free device %s on node %s: %w", d.ID, d.NodeID, err)
	}
	return nil
}
