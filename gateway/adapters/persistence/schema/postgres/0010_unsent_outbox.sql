-- The outbox keeps every message it sent (their ids guard against a second message of the same
-- id), so after a year it holds millions of sent rows and a few hundred waiting. The relays,
-- the parked list and the counts ask only about the unsent: indexed on those alone, marking a
-- message sent takes it out of these indexes instead of writing it into them again, and a
-- relay's look for pending messages no longer steps over the sent ones still in the index.
-- The queries state the indexes' condition as written here (`status <> 'sent'`), so that
-- SQLite's planner, which matches a partial index's condition by its terms, takes them.
DROP INDEX IF EXISTS outbox_by_status;
DROP INDEX IF EXISTS outbox_by_exchange;
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (status, id) WHERE status <> 'sent';
CREATE INDEX IF NOT EXISTS outbox_unsent_by_exchange ON outbox (exchange, status, id)
    WHERE status <> 'sent';
