-- Events already handled, one row per (source, id), the identity of a
-- CloudEvent.
CREATE TABLE inbox (
    source      text        NOT NULL,
    id          text        NOT NULL,
    type        text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, id)
);
