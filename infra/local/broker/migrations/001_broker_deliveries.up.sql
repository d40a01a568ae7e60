-- One row per (event, trigger) still to be delivered. A delivered row is
-- deleted, so the table holds only pending and dead work.
CREATE TABLE broker_deliveries (
    id              bigserial   PRIMARY KEY,
    trigger         text        NOT NULL,
    subscriber      text        NOT NULL,
    event           json        NOT NULL,              -- structured-mode CloudEvent, byte for byte (jsonb would rewrite the data)
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'dead')),
    dead_letter     boolean     NOT NULL DEFAULT false, -- headed to the trigger's dead-letter sink
    error_code      integer,                            -- knativeerrorcode for the sink
    error_data      bytea,                              -- response body for knativeerrordata (≤ 1 KiB)
    attempts        integer     NOT NULL DEFAULT 0,     -- attempts started towards the current target
    next_attempt_at timestamptz NOT NULL,               -- when due; while claimed, when the claim lapses
    claim           text,                               -- token of the dispatcher holding the row
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE INDEX broker_deliveries_due ON broker_deliveries (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX broker_deliveries_dead ON broker_deliveries (id) WHERE status = 'dead';
