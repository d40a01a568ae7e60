DROP TABLE IF EXISTS jobs, usage_charges, usage_devices, device_facts, subscriptions, sagas, orders, payments, ledger, balances, plans;
DROP FUNCTION IF EXISTS ledger_append_only();
