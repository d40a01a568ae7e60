-- Brokers sharing the database beat here while they run; a delivery claimed
-- by an owner whose beat is stale is taken over by another broker instead of
-- waiting for its lease.
CREATE TABLE broker_owners (
    owner   text        PRIMARY KEY,
    beat_at timestamptz NOT NULL -- the database's clock, so that brokers on other machines agree
);

-- The broker that holds the row's claim; meaningful only while claim is set.
ALTER TABLE broker_deliveries ADD COLUMN claim_owner text;
