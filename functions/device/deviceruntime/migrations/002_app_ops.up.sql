-- Installs and uninstalls of apps go through the same queue as the device's
-- other commands, so they run in order with them, one per device at a time.
ALTER TABLE runtime_commands DROP CONSTRAINT runtime_commands_op_check;
ALTER TABLE runtime_commands ADD CONSTRAINT runtime_commands_op_check
    CHECK (op IN ('create', 'start', 'stop', 'restart', 'delete', 'install', 'uninstall'));
