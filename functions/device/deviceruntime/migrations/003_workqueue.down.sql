ALTER TABLE runtime_commands RENAME COLUMN next_attempt_at TO available_at;
