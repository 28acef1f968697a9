-- Where an outbox message stands, in a column of its own: pending, sent, parked (for an admin)
-- or dropped (by an admin). Before, a dropped message was told by "dropped: " before its reason.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS status TEXT NOT NULL DEFAULT 'pending';
UPDATE outbox SET status = CASE
    WHEN sent_at IS NOT NULL THEN 'sent'
    WHEN parked_at IS NOT NULL AND SUBSTR(parked_why, 1, 9) = 'dropped: ' THEN 'dropped'
    WHEN parked_at IS NOT NULL THEN 'parked'
    ELSE 'pending' END;
UPDATE outbox SET parked_why = SUBSTR(parked_why, 10) WHERE SUBSTR(parked_why, 1, 9) = 'dropped: ';
DROP INDEX IF EXISTS outbox_pending;
CREATE INDEX IF NOT EXISTS outbox_by_status ON outbox (status, id);

-- What kind of refusal a quarantined file's reason is (gateway.reasons.ReasonClass), decided
-- once when the file is kept. Older rows are classed here by the words of their reason, as
-- gateway.reasons.CLASS_WORDS does it.
ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS reason_class TEXT NOT NULL DEFAULT 'content';
UPDATE quarantine SET reason_class = CASE
    WHEN POSITION('(limit max_' IN LOWER(reason)) > 0 THEN 'limit'
    WHEN POSITION('fault while' IN LOWER(reason)) > 0 THEN 'fault'
    WHEN POSITION('unknown partner' IN LOWER(reason)) > 0 THEN 'unknown_partner'
    WHEN POSITION('reused msgid' IN LOWER(reason)) > 0 THEN 'reused_msg_id'
    WHEN POSITION('signature' IN LOWER(reason)) > 0 OR POSITION('signed' IN LOWER(reason)) > 0
        OR POSITION('certificate' IN LOWER(reason)) > 0 OR POSITION('digest' IN LOWER(reason)) > 0
        OR POSITION('ds:' IN LOWER(reason)) > 0 THEN 'signature'
    WHEN POSITION('fails its xsd' IN LOWER(reason)) > 0 THEN 'schema'
    WHEN POSITION('malformed xml' IN LOWER(reason)) > 0 OR POSITION('doctype' IN LOWER(reason)) > 0
        OR POSITION('entity' IN LOWER(reason)) > 0 OR POSITION('entities' IN LOWER(reason)) > 0
        OR POSITION('document is' IN LOWER(reason)) > 0 OR POSITION('bytes;' IN LOWER(reason)) > 0 THEN 'malformed'
    WHEN POSITION('not supported' IN LOWER(reason)) > 0 OR POSITION('not a supported' IN LOWER(reason)) > 0
        OR POSITION('not a report' IN LOWER(reason)) > 0 OR POSITION('expected a' IN LOWER(reason)) > 0
        THEN 'unsupported'
    ELSE 'content' END;
