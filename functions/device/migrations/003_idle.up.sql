-- The idle stop: a running device with no open ADB session whose last use
-- (start, ADB session, shell, screenshot or log) is idle_minutes old is
-- stopped with reason idle. idle_minutes is the user's limit when the device
-- last took a running slot (the free tier's 30 until then).
ALTER TABLE devices ADD COLUMN idle_minutes int NOT NULL DEFAULT 30 CHECK (idle_minutes >= 0),
                    ADD COLUMN last_active_at timestamptz;
UPDATE devices SET last_active_at = coalesce(running_since, state_changed_at) WHERE state = 'running';
CREATE INDEX devices_running ON devices (last_active_at) WHERE state = 'running';

-- ADB sessions as the gateway's connection facts tell them. A session whose
-- closed fact came first is recorded closed, so the late opened fact cannot
-- reopen it.
CREATE TABLE device_sessions (
    session_id text        PRIMARY KEY,
    device_id  uuid        NOT NULL,
    opened_at  timestamptz NOT NULL,
    closed_at  timestamptz
);
CREATE INDEX device_sessions_open ON device_sessions (device_id) WHERE closed_at IS NULL;

-- Leases of scheduled runs: the holder of an unexpired row does the run; the
-- others skip it. A holder that dies leaves its row to expire.
CREATE TABLE leases (
    name       text        PRIMARY KEY,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL
);
