package device

import (
	"context"
	"errors"
	"fmt"
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

// Node is a device host as the admin API shows it. Allocated* is what its
// devices that are not deleted hold; Devices counts them.
type Node struct {
	ID                string    `json:"id"`
	Name              string    `json:"name"`
	DockerHost        string    `json:"docker_host"`
	ADBHost           string    `json:"adb_host"`
	CPUCores          int       `json:"cpu_cores"`
	MemoryMB          int       `json:"memory_mb"`
	AllocatedCPUCores int       `json:"allocated_cpu_cores"`
	AllocatedMemoryMB int       `json:"allocated_memory_mb"`
	Devices           int       `json:"devices"`
	Status            string    `json:"status"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
}

const insertNode = `
INSERT INTO nodes (name, docker_host, adb_host, cpu_cores, memory_mb) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (name) DO NOTHING`

// RegisterNode adds n unless a node of its name exists (an existing node
// keeps what an admin set).
func (s *Service) RegisterNode(ctx context.Context, n NodeConfig) error {
	if n.Name == "" || len(n.Name) > 64 || n.DockerHost == "" || n.ADBHost == "" || n.CPUCores < 0 || n.MemoryMB < 0 {
		return fmt.Errorf("device: node %+v needs a name (1-64), a Docker host, an ADB host and capacities ≥ 0", n)
	}
	if _, err := s.pool.Exec(ctx, insertNode, n.Name, n.DockerHost, n.ADBHost, n.CPUCores, n.MemoryMB); err != nil {
		return fmt.Errorf("register node %s: %w", n.Name, err)
	}
	return nil
}

const selectNodes = `
SELECT n.id::text, n.name, n.docker_host, n.adb_host, n.cpu_cores, n.memory_mb, n.allocated_cpu_cores,
    n.allocated_memory_mb, (SELECT count(*) FROM devices d WHERE d.node_id = n.id AND d.state <> 'deleted'),
    n.status, n.created_at, n.updated_at
FROM nodes n`

func scanNode(row pgx.Row) (Node, error) {
	var n Node
	err := row.Scan(&n.ID, &n.Name, &n.DockerHost, &n.ADBHost, &n.CPUCores, &n.MemoryMB, &n.AllocatedCPUCores,
		&n.AllocatedMemoryMB, &n.Devices, &n.Status, &n.CreatedAt, &n.UpdatedAt)
	return n, err
}

// Nodes lists every node by name.
func (s *Service) Nodes(ctx context.Context) ([]Node, error) {
	rows, err := s.pool.Query(ctx, selectNodes+` ORDER BY n.name`)
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
// change.
type NodeUpdate struct {
	CPUCores *int    `json:"cpu_cores"`
	MemoryMB *int    `json:"memory_mb"`
	Status   *string `json:"status"`
}

// Validate returns an apierr Invalid listing every fault of u.
func (u NodeUpdate) Validate() error {
	var p validate.Problems
	p.Check(u.CPUCores != nil || u.MemoryMB != nil || u.Status != nil, "body", "names nothing to change")
	p.Check(u.CPUCores == nil || (*u.CPUCores >= 0 && *u.CPUCores <= 1<<20), "cpu_cores", "must be 0 to 1048576")
	p.Check(u.MemoryMB == nil || (*u.MemoryMB >= 0 && *u.MemoryMB <= 1<<30), "memory_mb", "must be 0 to 1073741824")
	p.Check(u.Status == nil || *u.Status == NodeActive || *u.Status == NodeDraining, "status", "must be active or draining")
	return p.Err()
}

const updateNode = `
UPDATE nodes SET cpu_cores = coalesce($2, cpu_cores), memory_mb = coalesce($3, memory_mb),
    status = coalesce($4, status), updated_at = now()
WHERE id = $1`

// UpdateNode changes node id's capacity or status. Capacity may be set below
// what is allocated: existing devices stay, new ones go elsewhere. An
// unknown node is apierr NotFound.
func (s *Service) UpdateNode(ctx context.Context, id string, u NodeUpdate) (Node, error) {
	if err := u.Validate(); err != nil {
		return Node{}, err
	}
	if !uuidPattern.MatchString(id) {
		return Node{}, apierr.New(apierr.NotFound, "node not found")
	}
	var n Node
	err := db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, updateNode, id, u.CPUCores, u.MemoryMB, u.Status)
		if err != nil {
			return fmt.Errorf("update node %s: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return apierr.New(apierr.NotFound, "node not found")
		}
		n, err = scanNode(tx.QueryRow(ctx, selectNodes+` WHERE n.id = $1`, id))
		return err
	})
	return n, err
}

// candidateNodes lists active nodes with room for cpu and memory, least
// loaded first.
const candidateNodes = `
SELECT id::text FROM nodes
WHERE status = 'active' AND cpu_cores - allocated_cpu_cores >= $1 AND memory_mb - allocated_memory_mb >= $2
ORDER BY (allocated_cpu_cores::float8 / greatest(cpu_cores, 1)) + (allocated_memory_mb::float8 / greatest(memory_mb, 1)), name
LIMIT 20`

// allocateOnNode takes cpu and memory on one node if it is still active and
// has room, as checked after its row lock is taken.
const allocateOnNode = `
UPDATE nodes SET allocated_cpu_cores = allocated_cpu_cores + $2, allocated_memory_mb = allocated_memory_mb + $3,
    updated_at = now()
WHERE id = $1 AND status = 'active' AND cpu_cores - allocated_cpu_cores >= $2 AND memory_mb - allocated_memory_mb >= $3
RETURNING id::text`

// place takes cpu and memory on the least loaded active node with room,
// within tx, and returns its id; none is apierr Unavailable. Each candidate is
// taken with a conditional update, so concurrent placements never overfill a
// node.
func place(ctx context.Context, tx pgx.Tx, cpu, memory int) (string, error) {
	rows, err := tx.Query(ctx, candidateNodes, cpu, memory)
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
