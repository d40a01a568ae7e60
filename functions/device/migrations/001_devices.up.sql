-- Device hosts (nodes), cloud phones (devices) and the ADB host-port pool of
-- the device context.

-- A node is a Docker engine that runs phones. allocated_* is the sum of the
-- resources of the node's devices that are not deleted; placement and
-- deletion change it in the same transaction as the device row.
CREATE TABLE nodes (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name                text        NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
    docker_host         text        NOT NULL CHECK (docker_host <> ''),
    adb_host            text        NOT NULL CHECK (adb_host <> ''),
    cpu_cores           int         NOT NULL CHECK (cpu_cores >= 0),
    memory_mb           int         NOT NULL CHECK (memory_mb >= 0),
    allocated_cpu_cores int         NOT NULL DEFAULT 0 CHECK (allocated_cpu_cores >= 0),
    allocated_memory_mb int         NOT NULL DEFAULT 0 CHECK (allocated_memory_mb >= 0),
    status              text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'draining')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- A device row is never deleted: a deleted phone keeps its row (state
-- 'deleted') so that late runtime reports find it and are ignored.
-- running_since is set while the phone is in a billed running interval (from
-- the runtime's started report to its stop, error or removal); holds_slot
-- says whether the user context counts it as a running device.
CREATE TABLE devices (
    id               uuid        PRIMARY KEY,
    user_id          uuid        NOT NULL,
    name             text        NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    state            text        NOT NULL CHECK (state IN ('creating', 'starting', 'running', 'restarting',
                                     'stopping', 'stopped', 'deleting', 'deleted', 'error')),
    node_id          uuid        NOT NULL REFERENCES nodes (id),
    image            text        NOT NULL,
    cpu_cores        int         NOT NULL CHECK (cpu_cores > 0),
    memory_mb        int         NOT NULL CHECK (memory_mb > 0),
    storage_gb       int         NOT NULL CHECK (storage_gb >= 0),
    adb_port         int         NOT NULL CHECK (adb_port BETWEEN 1 AND 65535),
    container_id     text        NOT NULL DEFAULT '',
    last_error       text        NOT NULL DEFAULT '',
    stop_reason      text        NOT NULL DEFAULT '',
    holds_slot       boolean     NOT NULL DEFAULT false,
    op_seq           bigint      NOT NULL DEFAULT 1,
    last_report_at   timestamptz,
    running_since    timestamptz,
    state_changed_at timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz
);

CREATE INDEX devices_user_id ON devices (user_id, created_at DESC);
CREATE INDEX devices_node_id ON devices (node_id) WHERE state <> 'deleted';
-- A second guard beside device_ports: no two live devices share a port.
CREATE UNIQUE INDEX devices_live_adb_port ON devices (adb_port) WHERE state <> 'deleted';

-- The ADB host-port pool: a row holds a port for one device for the device's
-- whole life and is deleted with the device. The device row is written after
-- its port in the same transaction, hence the deferred foreign key.
CREATE TABLE device_ports (
    port         int         PRIMARY KEY CHECK (port BETWEEN 1 AND 65535),
    device_id    uuid        NOT NULL UNIQUE REFERENCES devices (id) DEFERRABLE INITIALLY DEFERRED,
    allocated_at timestamptz NOT NULL DEFAULT now()
);
