DROP TABLE runtime_devices;
DROP TABLE runtime_commands;
