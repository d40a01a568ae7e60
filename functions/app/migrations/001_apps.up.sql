-- The app context: uploaded APKs. An object is one stored blob, keyed by the
-- SHA-256 of its bytes and shared by every app with those bytes; an app is one
-- user's upload of a package version.
CREATE TABLE objects (
    sha256     text        PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    key        text        NOT NULL UNIQUE,
    size       bigint      NOT NULL CHECK (size > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE apps (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid        NOT NULL,
    package             text        NOT NULL,
    version_code        bigint      NOT NULL CHECK (version_code >= 0),
    version_name        text        NOT NULL,
    min_sdk             int         NOT NULL,
    target_sdk          int         NOT NULL,
    permissions         text[]      NOT NULL,
    launchable_activity text        NOT NULL,
    label               text        NOT NULL,
    filename            text        NOT NULL,
    sha256              text        NOT NULL REFERENCES objects (sha256),
    size                bigint      NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, package, version_code)
);

CREATE INDEX apps_user ON apps (user_id, created_at DESC, id DESC);
CREATE INDEX apps_sha256 ON apps (sha256);
