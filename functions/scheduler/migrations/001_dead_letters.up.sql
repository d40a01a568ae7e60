-- Events the broker gave up on, as its dead-letter sink received them.
CREATE TABLE dead_letters (
    id           bigserial PRIMARY KEY,
    event_source text        NOT NULL,
    event_id     text        NOT NULL,
    event_type   text        NOT NULL,
    destination  text        NOT NULL DEFAULT '',
    error_code   text        NOT NULL DEFAULT '',
    error_data   text        NOT NULL DEFAULT '',
    event        jsonb       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_source, event_id, destination)
);
CREATE INDEX dead_letters_received_at ON dead_letters (received_at DESC);
