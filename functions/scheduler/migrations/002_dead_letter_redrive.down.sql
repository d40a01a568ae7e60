ALTER TABLE dead_letters DROP COLUMN IF EXISTS redrives, DROP COLUMN IF EXISTS redriven_at;
