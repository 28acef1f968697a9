-- A refused file's bytes are kept in the quarantine folder (var/quarantine, by SHA-256), not in
-- the database: the row keeps the hash and the size. Rows kept before keep their bytes in `raw`,
-- which is now optional.
ALTER TABLE quarantine ADD COLUMN size BIGINT;
UPDATE quarantine SET size = octet_length(raw);
ALTER TABLE quarantine ALTER COLUMN size SET NOT NULL;
ALTER TABLE quarantine ALTER COLUMN raw DROP NOT NULL;
