-- The runtime's durable queue: every device command received, acknowledged
-- only once its row committed. A command is pending until a worker finished
-- it (done) or gave up (failed); a worker holds the row's lock for the whole
-- Docker operation, so a crashed process leaves the command pending.
CREATE TABLE runtime_commands (
    id           bigserial   PRIMARY KEY,
    event_source text        NOT NULL,
    event_id     text        NOT NULL,
    device_id    text        NOT NULL,
    op           text        NOT NULL CHECK (op IN ('create', 'start', 'stop', 'restart', 'delete')),
    event        bytea       NOT NULL, -- the command in structured CloudEvents JSON
    status       text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    attempts     int         NOT NULL DEFAULT 0,
    available_at timestamptz NOT NULL DEFAULT now(),
    last_error   text        NOT NULL DEFAULT '',
    received_at  timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    UNIQUE (event_source, event_id)
);

CREATE INDEX runtime_commands_pending ON runtime_commands (id) WHERE status = 'pending';
CREATE INDEX runtime_commands_pending_device ON runtime_commands (device_id, id) WHERE status = 'pending';
CREATE INDEX runtime_commands_finished ON runtime_commands (finished_at) WHERE status <> 'pending';

-- What each device should be (desired, from the last command processed) and
-- what the runtime last saw of it (observed). A deleted device stays as a
-- tombstone so that a late create cannot bring it back.
CREATE TABLE runtime_devices (
    device_id    text             PRIMARY KEY,
    user_id      text             NOT NULL DEFAULT '',
    node_id      text             NOT NULL DEFAULT '',
    docker_host  text             NOT NULL DEFAULT '',
    image        text             NOT NULL DEFAULT '',
    cpu_cores    double precision NOT NULL DEFAULT 0,
    memory_mb    bigint           NOT NULL DEFAULT 0,
    storage_gb   bigint           NOT NULL DEFAULT 0,
    adb_port     int              NOT NULL DEFAULT 0,
    name         text             NOT NULL DEFAULT '',
    desired      text             NOT NULL CHECK (desired IN ('running', 'stopped', 'deleted')),
    observed     text             NOT NULL DEFAULT 'unknown'
                 CHECK (observed IN ('unknown', 'running', 'stopped', 'crashed', 'failed', 'removed')),
    container_id text             NOT NULL DEFAULT '',
    recreations  int              NOT NULL DEFAULT 0,
    seq          bigint           NOT NULL DEFAULT 0, -- of the last command processed
    updated_at   timestamptz      NOT NULL DEFAULT now()
);

CREATE INDEX runtime_devices_host ON runtime_devices (docker_host) WHERE desired <> 'deleted';
