DROP TABLE device_ports;
DROP TABLE devices;
DROP TABLE nodes;
