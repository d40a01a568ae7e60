DELETE FROM runtime_commands WHERE op IN ('install', 'uninstall');
ALTER TABLE runtime_commands DROP CONSTRAINT runtime_commands_op_check;
ALTER TABLE runtime_commands ADD CONSTRAINT runtime_commands_op_check
    CHECK (op IN ('create', 'start', 'stop', 'restart', 'delete'));
