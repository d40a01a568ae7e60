package user

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/functions/user/userevents"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/validate"
)

// FreeTier is the quota every new account starts with.
var FreeTier = userevents.Limits{
	MaxDevices: 1, MaxRunningDevices: 1, MaxCPUCores: 2, MaxMemoryMB: 2048, MaxStorageGB: 16,
	DeviceMaxCPUCores: 2, DeviceMaxMemoryMB: 2048, IdleMinutes: 30,
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
	UserID    string            `json:"user_id"`
	Limits    userevents.Limits `json:"limits"`
	Usage     Usage             `json:"usage"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// Effective limits (see Limits.Plus): a user's limits are the base row in
// quotas (the free tier) plus every active grant in quota_grants, summed for
// the totals and counts, and the larger of base and grants for the per-device
// caps. They are computed when read, so a grant or revoke changes nothing but
// its own row.
const effectiveQuota = `
SELECT q.user_id::text,
       q.max_devices + g.max_devices, q.max_running_devices + g.max_running_devices,
       q.max_cpu_cores + g.max_cpu_cores, q.max_memory_mb + g.max_memory_mb, q.max_storage_gb + g.max_storage_gb,
       greatest(q.device_max_cpu_cores, g.device_max_cpu_cores), greatest(q.device_max_memory_mb, g.device_max_memory_mb),
       greatest(q.idle_minutes, g.idle_minutes),
       q.used_devices, q.used_running_devices, q.used_cpu_cores, q.used_memory_mb, q.used_storage_gb, q.updated_at
FROM quotas q
CROSS JOIN LATERAL (
    SELECT coalesce(sum(max_devices), 0)::int          AS max_devices,
           coalesce(sum(max_running_devices), 0)::int  AS max_running_devices,
           coalesce(sum(max_cpu_cores), 0)::int        AS max_cpu_cores,
           coalesce(sum(max_memory_mb), 0)::int        AS max_memory_mb,
           coalesce(sum(max_storage_gb), 0)::int       AS max_storage_gb,
           coalesce(max(device_max_cpu_cores), 0)::int AS device_max_cpu_cores,
           coalesce(max(device_max_memory_mb), 0)::int AS device_max_memory_mb,
           coalesce(max(idle_minutes), 0)::int         AS idle_minutes
    FROM quota_grants WHERE user_id = q.user_id AND status = 'active'
) g
WHERE q.user_id = $1`

// lockQuota reads the effective quota with the user's quotas row locked, so
// that every change to usage is serialised per user.
const lockQuota = effectiveQuota + `
FOR UPDATE OF q`

func scanQuota(row pgx.Row) (Quota, error) {
	var q Quota
	l, u := &q.Limits, &q.Usage
	err := row.Scan(&q.UserID,
		&l.MaxDevices, &l.MaxRunningDevices, &l.MaxCPUCores, &l.MaxMemoryMB, &l.MaxStorageGB,
		&l.DeviceMaxCPUCores, &l.DeviceMaxMemoryMB, &l.IdleMinutes,
		&u.Devices, &u.RunningDevices, &u.CPUCores, &u.MemoryMB, &u.StorageGB, &q.UpdatedAt)
	return q, err
}

// Quota returns the effective quota of userID (base plus active grants) and
// its usage, or apierr NotFound.
func (s *Service) Quota(ctx context.Context, userID string) (Quota, error) {
	if !validate.UUID(userID) {
		return Quota{}, apierr.New(apierr.NotFound, "quota not found")
	}
	q, err := scanQuota(s.pool.QueryRow(ctx, effectiveQuota, userID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Quota{}, apierr.New(apierr.NotFound, "quota not found")
	}
	if err != nil {
		return Quota{}, fmt.Errorf("read quota of %s: %w", userID, err)
	}
	return q, nil
}
