ALTER TABLE devices DROP COLUMN node_labels;
DROP INDEX nodes_live_docker_host;
DROP INDEX nodes_live_name;
DELETE FROM nodes WHERE deleted_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.node_id = nodes.id);
ALTER TABLE nodes ADD CONSTRAINT nodes_name_key UNIQUE (name);
ALTER TABLE nodes DROP COLUMN deleted_at, DROP COLUMN health_changed_at, DROP COLUMN health_error,
                  DROP COLUMN health, DROP COLUMN labels;
