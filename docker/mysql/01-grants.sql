-- Run once, when the MySQL volume is first initialized (after MYSQL_USER is created).
-- dj-flows declares one database per schema, so its user may create any database; keep this
-- server for the pipeline, or narrow the grant to a name pattern, e.g. ON `lab\_%`.*
GRANT ALL PRIVILEGES ON *.* TO 'djflows'@'%';
FLUSH PRIVILEGES;
