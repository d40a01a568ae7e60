DROP TABLE device_apps;
