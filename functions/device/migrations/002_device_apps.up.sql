-- The apps installed (or being installed) on each device, one row per
-- package: a device holds one version of a package at a time, as Android
-- does. requested_at is when the latest install or uninstall was asked for;
-- a fact from device-runtime older than it answers an earlier request.
CREATE TABLE device_apps (
    device_id    uuid        NOT NULL REFERENCES devices (id),
    package      text        NOT NULL,
    user_id      uuid        NOT NULL,
    app_id       uuid        NOT NULL,
    version_code bigint      NOT NULL,
    version_name text        NOT NULL DEFAULT '',
    label        text        NOT NULL DEFAULT '',
    state        text        NOT NULL CHECK (state IN ('installing', 'installed', 'failed', 'uninstalling')),
    reason       text        NOT NULL DEFAULT '',
    requested_at timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, package)
);
