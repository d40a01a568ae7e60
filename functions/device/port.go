package device

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cloudphone/cloudphone/shared/apierr"
)

// claimLowestPort inserts the lowest port of the range that no row holds. A
// concurrent transaction that inserted the same port first makes this one
// wait for it and then insert nothing (no row returned), so the caller tries
// again with a fresh snapshot.
const claimLowestPort = `
INSERT INTO device_ports (port, device_id)
SELECT p, $1 FROM generate_series($2::int, $3::int) AS p
WHERE NOT EXISTS (SELECT 1 FROM device_ports d WHERE d.port = p)
ORDER BY p
LIMIT 1
ON CONFLICT (port) DO NOTHING
RETURNING port`

const countPorts = `SELECT count(*) FROM device_ports WHERE port BETWEEN $1 AND $2`

// allocatePort holds the lowest free port of s's range for deviceID within
// tx; the port stays held until the device is deleted (device_ports: port
// primary key, device_id unique). A full pool is apierr Unavailable.
func (s *Service) allocatePort(ctx context.Context, tx pgx.Tx, deviceID string) (int, error) {
	size := s.ports.Last - s.ports.First + 1
	for range size + 1 {
		var port int
		err := tx.QueryRow(ctx, claimLowestPort, deviceID, s.ports.First, s.ports.Last).Scan(&port)
		if err == nil {
			return port, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("allocate a port for device %s: %w", deviceID, err)
		}
		var used int
		if err := tx.QueryRow(ctx, countPorts, s.ports.First, s.ports.Last).Scan(&used); err != nil {
			return 0, fmt.Errorf("count ports: %w", err)
		}
		if used >= size {
			break
		}
	}
	return 0, apierr.New(apierr.Unavailable, "no free ADB port: all %d ports of %d-%d are in use", size, s.ports.First, s.ports.Last)
}

// freePort gives deviceID's port back to the pool within tx.
func freePort(ctx context.Context, tx pgx.Tx, deviceID string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM device_ports WHERE device_id = $1`, deviceID); err != nil {
		return fmt.Errorf("free the port of device %s: %w", deviceID, err)
	}
	return nil
}
