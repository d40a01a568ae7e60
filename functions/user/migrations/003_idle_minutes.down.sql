ALTER TABLE quota_grants DROP COLUMN IF EXISTS idle_minutes;
ALTER TABLE quotas DROP COLUMN IF EXISTS idle_minutes;
