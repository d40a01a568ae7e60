-- Many device hosts. labels are what a phone may ask of its node at create;
-- health is device-runtime's view of the node's engine (down after it has
-- not answered for DEVICE_NODE_DOWN_AFTER); a deleted node keeps its row
-- (deleted devices still name it) but frees its name and engine.
ALTER TABLE nodes ADD COLUMN labels jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
                  ADD COLUMN health text NOT NULL DEFAULT 'up' CHECK (health IN ('up', 'down')),
                  ADD COLUMN health_error text NOT NULL DEFAULT '',
                  ADD COLUMN health_changed_at timestamptz NOT NULL DEFAULT now(),
                  ADD COLUMN deleted_at timestamptz;
ALTER TABLE nodes DROP CONSTRAINT nodes_name_key;
CREATE UNIQUE INDEX nodes_live_name ON nodes (name) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX nodes_live_docker_host ON nodes (docker_host) WHERE deleted_at IS NULL;
-- The labels a device asked of its node at create (a move keeps to them).
ALTER TABLE devices ADD COLUMN node_labels jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(node_labels) = 'object');
