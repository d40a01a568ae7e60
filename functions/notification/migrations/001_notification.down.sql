DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
DROP TABLE email_outbox;
DROP TABLE preferences;
DROP TABLE notifications;
DROP TABLE recipients;
