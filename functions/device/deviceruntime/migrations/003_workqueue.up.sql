-- runtime_commands is worked through shared/workqueue, which names the time a
-- row is due next_attempt_at.
ALTER TABLE runtime_commands RENAME COLUMN available_at TO next_attempt_at;
