-- Who notifications are for: a copy of each user's name and address, kept
-- from the user context's events (this context never reads the user
-- database). last_seq numbers the user's in-app notifications 1, 2, 3, …:
-- it is incremented under this row's lock in the transaction that inserts
-- the notification, so sequence order is commit order and has no gaps, which
-- is what lets a live stream resume from Last-Event-ID without loss.
CREATE TABLE recipients (
    user_id    uuid        PRIMARY KEY,
    username   text        NOT NULL DEFAULT '',
    email      text        NOT NULL DEFAULT '',
    last_seq   bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The in-app inbox.
CREATE TABLE notifications (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES recipients (user_id),
    seq        bigint      NOT NULL,
    type       text        NOT NULL,
    title      text        NOT NULL,
    body       text        NOT NULL,
    data       jsonb       NOT NULL DEFAULT '{}',
    event_id   text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    read_at    timestamptz,
    UNIQUE (user_id, seq)
);
CREATE INDEX notifications_unread ON notifications (user_id, seq) WHERE read_at IS NULL;

-- Per user and notification type, which channels are on. A missing row means
-- the type's defaults.
CREATE TABLE preferences (
    user_id    uuid        NOT NULL,
    type       text        NOT NULL,
    in_app     bool        NOT NULL,
    email      bool        NOT NULL,
    webhook    bool        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, type)
);

-- Emails waiting to go out, being retried, sent, or dead (given up after the
-- last attempt, kept with the last error). A worker claims due rows with
-- FOR UPDATE SKIP LOCKED; the in-app path only inserts here.
CREATE TABLE email_outbox (
    id              bigserial   PRIMARY KEY,
    user_id         uuid        NOT NULL,
    event_id        text        NOT NULL,
    type            text        NOT NULL,
    to_address      text        NOT NULL,
    subject         text        NOT NULL,
    text_body       text        NOT NULL,
    html_body       text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts        int         NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    UNIQUE (event_id, user_id)
);
CREATE INDEX email_outbox_due ON email_outbox (next_attempt_at) WHERE status = 'pending';

-- A user's outgoing webhook endpoints. secret signs every delivery; it is
-- shown once, when the endpoint is made.
CREATE TABLE webhooks (
    id          uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL,
    url         text        NOT NULL,
    event_types text[]      NOT NULL,
    secret      text        NOT NULL,
    active      bool        NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_user ON webhooks (user_id);

-- One event to one endpoint: pending until the endpoint answers 2xx, retried
-- with backoff until expires_at (24 hours after it was made or re-sent), then
-- failed.
CREATE TABLE webhook_deliveries (
    id              uuid        PRIMARY KEY,
    webhook_id      uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    user_id         uuid        NOT NULL,
    event_id        text        NOT NULL,
    type            text        NOT NULL,
    payload         bytea       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        int         NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    last_error      text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at DESC);

-- Every attempt of a delivery, with what the endpoint answered.
CREATE TABLE webhook_attempts (
    id           bigserial   PRIMARY KEY,
    delivery_id  uuid        NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    at           timestamptz NOT NULL,
    status_code  int         NOT NULL DEFAULT 0,
    error        text        NOT NULL DEFAULT '',
    duration_ms  int         NOT NULL DEFAULT 0
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);
