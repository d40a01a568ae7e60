package device

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/functions/device/deviceevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/db"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// CreateRequest is the body of POST /api/v1/devices.
type CreateRequest struct {
	Name      string `json:"name"`
	CPUCores  int    `json:"cpu_cores"`
	MemoryMB  int    `json:"memory_mb"`
	StorageGB *int   `json:"storage_gb"`
	Image     string `json:"image"`
	// NodeLabels are labels the phone's node must carry (all of them).
	NodeLabels map[string]string `json:"node_labels"`
}

// validate returns an apierr Invalid listing every fault of req.
func (s *Service) validate(req CreateRequest) error {
	var p validate.Problems
	name := strings.TrimSpace(req.Name)
	p.Check(name != "" && len(name) <= NameMax && validate.NoControlChars(name), "name",
		fmt.Sprintf("must be 1 to %d characters without control characters", NameMax))
	p.Check(req.CPUCores >= 1 && req.CPUCores <= CPUCoresMax, "cpu_cores", fmt.Sprintf("must be 1 to %d", CPUCoresMax))
	p.Check(req.MemoryMB >= MemoryMBMin && req.MemoryMB <= MemoryMBMax, "memory_mb", fmt.Sprintf("must be %d to %d", MemoryMBMin, MemoryMBMax))
	p.Check(req.StorageGB == nil || (*req.StorageGB >= 0 && *req.StorageGB <= StorageGBMax), "storage_gb", fmt.Sprintf("must be 0 to %d", StorageGBMax))
	p.Check(req.Image == "" || s.images[req.Image], "image", "is not an image this platform offers")
	checkLabels(&p, "node_labels", req.NodeLabels)
	return p.Err()
}

// Create makes a device for p: it validates req, reserves the device's
// quota and a running slot with the user context (before anything is
// recorded), then in one transaction places it on a node, holds the lowest
// free ADB port, records it 'creating' and writes the create command. When
// recording fails the reservation is released. A refusal for lack of quota
// is apierr QuotaExceeded; a balance that does not cover an hour of the
// phone is apierr InsufficientFunds (409); no node with room or no free port
// is apierr Unavailable.
func (s *Service) Create(ctx context.Context, p auth.Principal, req CreateRequest) (Device, error) {
	if !p.HasPermission("device:create") {
		return Device{}, apierr.New(apierr.Forbidden, "you may not create devices")
	}
	if err := s.validate(req); err != nil {
		return Device{}, err
	}
	d := Device{
		ID: newUUID(), UserID: p.UserID, Name: strings.TrimSpace(req.Name), State: StateCreating,
		Image: req.Image, CPUCores: req.CPUCores, MemoryMB: req.MemoryMB, StorageGB: s.storage,
	}
	if d.Image == "" {
		d.Image = s.image
	}
	if req.StorageGB != nil {
		d.StorageGB = *req.StorageGB
	}
	if err := s.coverHour(ctx, d.UserID, d.CPUCores, d.MemoryMB); err != nil {
		return Device{}, err
	}
	err := s.quota.Reserve(ctx, d.UserID, QuotaReservation{DeviceID: d.ID, CPUCores: d.CPUCores, MemoryMB: d.MemoryMB, StorageGB: d.StorageGB})
	if err != nil {
		return Device{}, err
	}
	idle, err := s.quota.Start(ctx, d.UserID, d.ID)
	if err != nil {
		return Device{}, s.undoReserve(ctx, d, err)
	}
	d.setIdleLimit(idle)
	if err := s.record(ctx, &d, req.NodeLabels); err != nil {
		return Device{}, s.undoReserve(ctx, d, err)
	}
	s.log.InfoContext(ctx, "device created", "device_id", d.ID, "user_id", d.UserID, "node_id", d.NodeID, "adb_port", d.ADBPort)
	return d, nil
}

// undoReserve releases d's reservation after cause made its creation fail,
// and returns cause. A failed release is logged: the reservation then stays
// until released by hand, and Create's answer does not change.
func (s *Service) undoReserve(ctx context.Context, d Device, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.quota.Release(ctx, d.UserID, d.ID); err != nil {
		s.log.ErrorContext(ctx, "quota of a device that was not created is still reserved",
			"device_id", d.ID, "user_id", d.UserID, "err", err)
	}
	return cause
}

const insertDevice = `
INSERT INTO devices (id, user_id, name, state, node_id, image, cpu_cores, memory_mb, storage_gb, adb_port,
    holds_slot, op_seq, state_changed_at, idle_minutes, node_labels)
VALUES ($1, $2, $3, 'creating', $4, $5, $6, $7, $8, $9, true, 0, now(), $10, $11)`

// record places d on a node with labels, holds its port, inserts it and
// writes its create command, in one transaction; it fills d's node, port and
// timestamps.
func (s *Service) record(ctx context.Context, d *Device, labels map[string]string) error {
	if labels == nil {
		labels = map[string]string{}
	}
	return db.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		nodeID, err := place(ctx, tx, d.CPUCores, d.MemoryMB, labels, s.pack)
		if err != nil {
			return err
		}
		port, err := s.allocatePort(ctx, tx, d.ID)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, insertDevice, d.ID, d.UserID, d.Name, nodeID, d.Image, d.CPUCores, d.MemoryMB,
			d.StorageGB, port, d.IdleMinutes, labels); err != nil {
			return fmt.Errorf("insert device %s: %w", d.ID, err)
		}
		got, err := scanDevice(tx.QueryRow(ctx, selectDevices+` WHERE d.id = $1`, d.ID))
		if err != nil {
			return fmt.Errorf("read device %s: %w", d.ID, err)
		}
		*d = got
		if err := command(ctx, tx, SourceDevices, d, deviceevents.OpCreate, ""); err != nil {
			return err
		}
		return save(ctx, tx, d)
	})
}

// newUUID returns a random UUIDv4.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
