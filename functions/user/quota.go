package user

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/shared/apierr"
)

// Limits are what a user may hold: totals over all devices and caps per device.
type Limits struct {
	MaxDevices        int `json:"max_devices"`
	MaxRunningDevices int `json:"max_running_devices"`
	MaxCPUCores       int `json:"max_cpu_cores"`
	MaxMemoryMB       int `json:"max_memory_mb"`
	MaxStorageGB      int `json:"max_storage_gb"`
	DeviceMaxCPUCores int `json:"device_max_cpu_cores"`
	DeviceMaxMemoryMB int `json:"device_max_memory_mb"`
}

// FreeTier is the quota every new account starts with (SPEC §1).
var FreeTier = Limits{
	MaxDevices: 1, MaxRunningDevices: 1, MaxCPUCores: 2, MaxMemoryMB: 2048, MaxStorageGB: 16,
	DeviceMaxCPUCores: 2, DeviceMaxMemoryMB: 2048,
}

// Usage is what a user's devices hold now. It may exceed Limits after the
// limits were lowered.
type Usage struct {
	Devices        int `json:"devices"`
	RunningDevices int `json:"running_devices"`
	CPUCores       int `json:"cpu_cores"`
	MemoryMB       int `json:"memory_mb"`
	StorageGB      int `json:"storage_gb"`
}

// Quota is a user's limits and usage.
type Quota struct {
	UserID    string    `json:"user_id"`
	Limits    Limits    `json:"limits"`
	Usage     Usage     `json:"usage"`
	UpdatedAt time.Time `json:"updated_at"`
}

const selectQuota = `
SELECT user_id::text, max_devices, max_running_devices, max_cpu_cores, max_memory_mb, max_storage_gb,
       device_max_cpu_cores, device_max_memory_mb,
       used_devices, used_running_devices, used_cpu_cores, used_memory_mb, used_storage_gb, updated_at
FROM quotas WHERE user_id = $1`

// Quota returns the quota of userID, or apierr NotFound.
func (s *Service) Quota(ctx context.Context, userID string) (Quota, error) {
	if !isUUID(userID) {
		return Quota{}, apierr.New(apierr.NotFound, "quota not found")
	}
	var q Quota
	l, u := &q.Limits, &q.Usage
	err := s.pool.QueryRow(ctx, selectQuota, userID).Scan(&q.UserID,
		&l.MaxDevices, &l.MaxRunningDevices, &l.MaxCPUCores, &l.MaxMemoryMB, &l.MaxStorageGB,
		&l.DeviceMaxCPUCores, &l.DeviceMaxMemoryMB,
		&u.Devices, &u.RunningDevices, &u.CPUCores, &u.MemoryMB, &u.StorageGB, &q.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Quota{}, apierr.New(apierr.NotFound, "quota not found")
	}
	if err != nil {
		return Quota{}, fmt.Errorf("read quota of %s: %w", userID, err)
	}
	return q, nil
}
