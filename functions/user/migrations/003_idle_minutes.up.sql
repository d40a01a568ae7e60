-- How long a running device may go unused before the device context stops
-- it: the base (free tier) value, and what each grant raises it to (the
-- effective limit is the larger; 0 raises nothing).
ALTER TABLE quotas ADD COLUMN idle_minutes int NOT NULL DEFAULT 30 CHECK (idle_minutes >= 0);
ALTER TABLE quota_grants ADD COLUMN idle_minutes int NOT NULL DEFAULT 0 CHECK (idle_minutes >= 0);
