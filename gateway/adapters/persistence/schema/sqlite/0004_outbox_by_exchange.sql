-- The file relay looks for pending files of file-exchange partners several times a second: by
-- exchange first, it finds them (or that there are none) without reading the pending postings.
CREATE INDEX IF NOT EXISTS outbox_pending_by_exchange ON outbox (exchange, sent_at, parked_at, id);
