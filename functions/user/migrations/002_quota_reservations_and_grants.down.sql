DROP TABLE quota_grants;
DROP TABLE quota_reservations;
