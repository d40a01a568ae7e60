-- A reservation is the quota one device holds, counted in its user's used_*
-- counters. The device id is the key, so reserving is idempotent per device.
CREATE TABLE quota_reservations (
    device_id  text        PRIMARY KEY CHECK (device_id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    cpu_cores  int         NOT NULL CHECK (cpu_cores > 0),
    memory_mb  int         NOT NULL CHECK (memory_mb > 0),
    storage_gb int         NOT NULL CHECK (storage_gb >= 0),
    running    bool        NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX quota_reservations_user ON quota_reservations (user_id);

-- A grant adds a plan's quota to a user's base quota (the quotas row) while it
-- is active. A row with status revoked and no granted_at is a tombstone: the
-- revoke arrived before its grant, and the grant must not apply when it comes.
-- user_id has no foreign key because a tombstone may name any user.
CREATE TABLE quota_grants (
    grant_id             text        PRIMARY KEY CHECK (grant_id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    user_id              uuid        NOT NULL,
    plan_id              text        NOT NULL DEFAULT '',
    status               text        NOT NULL CHECK (status IN ('active', 'revoked')),
    max_devices          int         NOT NULL DEFAULT 0 CHECK (max_devices >= 0),
    max_running_devices  int         NOT NULL DEFAULT 0 CHECK (max_running_devices >= 0),
    max_cpu_cores        int         NOT NULL DEFAULT 0 CHECK (max_cpu_cores >= 0),
    max_memory_mb        int         NOT NULL DEFAULT 0 CHECK (max_memory_mb >= 0),
    max_storage_gb       int         NOT NULL DEFAULT 0 CHECK (max_storage_gb >= 0),
    device_max_cpu_cores int         NOT NULL DEFAULT 0 CHECK (device_max_cpu_cores >= 0),
    device_max_memory_mb int         NOT NULL DEFAULT 0 CHECK (device_max_memory_mb >= 0),
    expires_at           timestamptz,
    granted_at           timestamptz,
    revoked_at           timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'active') = (revoked_at IS NULL))
);

CREATE INDEX quota_grants_active ON quota_grants (user_id) WHERE status = 'active';

