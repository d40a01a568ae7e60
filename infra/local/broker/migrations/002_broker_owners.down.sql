ALTER TABLE broker_deliveries DROP COLUMN claim_owner;
DROP TABLE broker_owners;
