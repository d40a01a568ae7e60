-- How long a phone of a plan's buyer may sit idle (no ADB session, no API
-- use) before it is stopped; the user context takes the larger of this and
-- the base quota's. 0 adds nothing to the base.
ALTER TABLE plans ADD COLUMN idle_minutes int NOT NULL DEFAULT 0 CHECK (idle_minutes BETWEEN 0 AND 10080);
UPDATE plans SET idle_minutes = CASE id WHEN 'basic' THEN 60 WHEN 'pro' THEN 120 WHEN 'team' THEN 240 ELSE 0 END;
