-- The file relay looks for pending files of file-exchange partners several times a second, and
-- the relay for files to banks before postings: by exchange first, they find them (or that
-- there are none) without reading every pending posting.
CREATE INDEX IF NOT EXISTS outbox_by_exchange ON outbox (exchange, status, id);
