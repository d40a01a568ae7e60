DROP TABLE IF EXISTS leases, device_sessions;
DROP INDEX IF EXISTS devices_running;
ALTER TABLE devices DROP COLUMN IF EXISTS last_active_at, DROP COLUMN IF EXISTS idle_minutes;
