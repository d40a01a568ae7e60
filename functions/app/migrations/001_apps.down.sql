DROP TABLE apps;
DROP TABLE objects;
