-- Accounts of the user context: users, their rotating refresh tokens and
-- their quota (limits and usage counters).
CREATE TABLE users (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    username      text        NOT NULL UNIQUE
                              CHECK (username = lower(username) AND username ~ '^[a-z0-9_.-]{3,32}$'),
    email         text        NOT NULL UNIQUE
                              CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    password_hash text        NOT NULL,
    roles         text[]      NOT NULL DEFAULT '{user}'
                              CHECK (roles <@ ARRAY['user', 'admin']::text[]),
    status        text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    failed_logins int         NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    locked_until  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- A refresh token is stored only as the SHA-256 of its value. Tokens of one
-- login form a family: each refresh marks the presented token used and adds
-- its successor; presenting a used or revoked token revokes the family.
CREATE TABLE refresh_tokens (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    family_id   uuid        NOT NULL,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  bytea       NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz,
    replaced_by uuid        REFERENCES refresh_tokens (id) ON DELETE SET NULL
);

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id) WHERE revoked_at IS NULL;

-- Usage may exceed a limit (limits can be lowered under running devices), so
-- used <= max is not a constraint; nothing is ever negative.
CREATE TABLE quotas (
    user_id              uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    max_devices          int         NOT NULL CHECK (max_devices >= 0),
    max_running_devices  int         NOT NULL CHECK (max_running_devices >= 0),
    max_cpu_cores        int         NOT NULL CHECK (max_cpu_cores >= 0),
    max_memory_mb        int         NOT NULL CHECK (max_memory_mb >= 0),
    max_storage_gb       int         NOT NULL CHECK (max_storage_gb >= 0),
    device_max_cpu_cores int         NOT NULL CHECK (device_max_cpu_cores >= 0),
    device_max_memory_mb int         NOT NULL CHECK (device_max_memory_mb >= 0),
    used_devices         int         NOT NULL DEFAULT 0 CHECK (used_devices >= 0),
    used_running_devices int         NOT NULL DEFAULT 0 CHECK (used_running_devices >= 0),
    used_cpu_cores       int         NOT NULL DEFAULT 0 CHECK (used_cpu_cores >= 0),
    used_memory_mb       int         NOT NULL DEFAULT 0 CHECK (used_memory_mb >= 0),
    used_storage_gb      int         NOT NULL DEFAULT 0 CHECK (used_storage_gb >= 0),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
