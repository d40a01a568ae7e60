-- Events waiting to be published. A row is deleted once the broker accepted
-- its event; rows that kept failing stay with status 'dead' until re-driven.
CREATE TABLE outbox (
    id              bigserial   PRIMARY KEY,
    event_id        text        NOT NULL UNIQUE,
    type            text        NOT NULL,
    source          text        NOT NULL,
    subject         text        NOT NULL DEFAULT '',
    payload         bytea       NOT NULL, -- the event in structured CloudEvents JSON
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        int         NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text        NOT NULL DEFAULT '',
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'dead'))
);

CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX outbox_dead ON outbox (id) WHERE status = 'dead';
