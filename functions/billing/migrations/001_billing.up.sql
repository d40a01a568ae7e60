-- Plans an administrator sells. The quota columns are what a purchase grants
-- on top of the buyer's base quota, for period_days.
CREATE TABLE plans (
    id                   text        PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
    name                 text        NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    price                bigint      NOT NULL CHECK (price >= 0),
    currency             text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    period_days          int         NOT NULL CHECK (period_days BETWEEN 1 AND 3660),
    max_devices          int         NOT NULL DEFAULT 0 CHECK (max_devices >= 0),
    max_running_devices  int         NOT NULL DEFAULT 0 CHECK (max_running_devices >= 0),
    max_cpu_cores        int         NOT NULL DEFAULT 0 CHECK (max_cpu_cores >= 0),
    max_memory_mb        int         NOT NULL DEFAULT 0 CHECK (max_memory_mb >= 0),
    max_storage_gb       int         NOT NULL DEFAULT 0 CHECK (max_storage_gb >= 0),
    device_max_cpu_cores int         NOT NULL DEFAULT 0 CHECK (device_max_cpu_cores >= 0),
    device_max_memory_mb int         NOT NULL DEFAULT 0 CHECK (device_max_memory_mb >= 0),
    active               bool        NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- One balance per user. entries is the sequence number of the user's last
-- ledger entry; every change of balance writes the next one in the same
-- transaction, under this row's lock.
CREATE TABLE balances (
    user_id            uuid        PRIMARY KEY,
    balance            bigint      NOT NULL CHECK (balance >= 0),
    currency           text        NOT NULL,
    entries            bigint      NOT NULL DEFAULT 0,
    unpaid_usage       bigint      NOT NULL DEFAULT 0 CHECK (unpaid_usage >= 0),
    exhausted_notified bool        NOT NULL DEFAULT false,
    low_notified_at    timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- The append-only ledger: every change of a balance, with the balance before
-- and after it. (user_id, seq) is the chain of one balance.
CREATE TABLE ledger (
    id             bigserial   PRIMARY KEY,
    user_id        uuid        NOT NULL,
    seq            bigint      NOT NULL,
    amount         bigint      NOT NULL CHECK (amount <> 0),
    balance_before bigint      NOT NULL CHECK (balance_before >= 0),
    balance_after  bigint      NOT NULL CHECK (balance_after >= 0),
    currency       text        NOT NULL,
    kind           text        NOT NULL CHECK (kind IN ('credit', 'debit', 'refund', 'topup', 'usage')),
    reference      text        NOT NULL,
    reason         text        NOT NULL DEFAULT '',
    operator       uuid,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, seq),
    CHECK (balance_after = balance_before + amount),
    CHECK ((kind = 'credit') = (operator IS NOT NULL))
);

-- A debit, refund or top-up is booked at most once per reference (order or
-- provider event).
CREATE UNIQUE INDEX ledger_once ON ledger (kind, reference) WHERE kind IN ('debit', 'refund', 'topup');
CREATE INDEX ledger_user ON ledger (user_id, seq DESC);

CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only';
END $$;

CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

-- Top-ups received from the payment provider, one row per provider event.
CREATE TABLE payments (
    provider_event_id text        PRIMARY KEY,
    user_id           uuid        NOT NULL,
    amount            bigint      NOT NULL CHECK (amount > 0),
    currency          text        NOT NULL,
    ledger_id         bigint      NOT NULL REFERENCES ledger (id),
    received_at       timestamptz NOT NULL DEFAULT now()
);

-- Orders of plans. The plan's price, period and quota are copied when the
-- order is placed, so changing a plan never changes an order.
CREATE TABLE orders (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL,
    plan_id         text        NOT NULL REFERENCES plans (id),
    price           bigint      NOT NULL CHECK (price >= 0),
    currency        text        NOT NULL,
    period_days     int         NOT NULL,
    quota           jsonb       NOT NULL,
    status          text        NOT NULL CHECK (status IN ('pending', 'paid', 'active', 'failed', 'cancelled')),
    failure_code    text        NOT NULL DEFAULT '',
    failure_reason  text        NOT NULL DEFAULT '',
    subscription_id uuid,
    idempotency_key text        NOT NULL,
    request_hash    text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, idempotency_key)
);

CREATE INDEX orders_user ON orders (user_id, created_at DESC, id DESC);

-- The purchase saga of each order: where it is, until when it may run, the
-- compensations its finished steps registered, and what happened so far.
CREATE TABLE sagas (
    order_id      uuid        PRIMARY KEY REFERENCES orders (id),
    step          text        NOT NULL CHECK (step IN ('debit', 'grant', 'activate', 'done')),
    status        text        NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    deadline      timestamptz NOT NULL,
    compensations text[]      NOT NULL DEFAULT '{}',
    history       jsonb       NOT NULL DEFAULT '[]',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX sagas_overdue ON sagas (deadline) WHERE status = 'running';

-- Subscriptions: one active row per (user, plan); grant_id is the quota grant
-- (the order id) that currently backs it.
CREATE TABLE subscriptions (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL,
    plan_id    text        NOT NULL REFERENCES plans (id),
    status     text        NOT NULL CHECK (status IN ('active', 'expired')),
    grant_id   text        NOT NULL,
    started_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX subscriptions_active ON subscriptions (user_id, plan_id) WHERE status = 'active';
CREATE INDEX subscriptions_expiring ON subscriptions (expires_at) WHERE status = 'active';

-- Device facts from the device context, as received (in any order).
CREATE TABLE device_facts (
    device_id text        NOT NULL,
    kind      text        NOT NULL CHECK (kind IN ('running', 'stopped', 'error', 'deleted')),
    at        timestamptz NOT NULL,
    user_id   uuid        NOT NULL,
    cpu_cores int         NOT NULL DEFAULT 0,
    memory_mb int         NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, kind, at)
);

-- Devices with usage to account for; pending is false once every interval
-- is closed and charged.
CREATE TABLE usage_devices (
    device_id  text        PRIMARY KEY,
    user_id    uuid        NOT NULL,
    pending    bool        NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX usage_devices_pending ON usage_devices (user_id) WHERE pending;

-- What has been accounted for each running interval of a device: its started
-- minutes and their price.
CREATE TABLE usage_charges (
    device_id  text        NOT NULL,
    started_at timestamptz NOT NULL,
    user_id    uuid        NOT NULL,
    ended_at   timestamptz,
    minutes    bigint      NOT NULL DEFAULT 0,
    amount     bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, started_at)
);

-- Scheduled jobs: when each last ran (claimed with a conditional UPDATE, so
-- of two overlapping ticks one runs the job).
CREATE TABLE jobs (
    name        text        PRIMARY KEY,
    last_run_at timestamptz
);
