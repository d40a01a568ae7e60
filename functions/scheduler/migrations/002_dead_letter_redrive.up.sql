-- Re-drive: an operator sends a dead letter to the broker again. A letter
-- that fails again after a re-drive is received afresh (redriven_at cleared).
ALTER TABLE dead_letters ADD COLUMN redriven_at timestamptz,
                         ADD COLUMN redrives int NOT NULL DEFAULT 0;
