DROP TABLE broker_deliveries;
