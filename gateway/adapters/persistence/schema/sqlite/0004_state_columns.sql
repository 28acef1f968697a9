-- Where an outbox message stands, in a column of its own: pending, sent, parked (for an admin)
-- or dropped (by an admin). Before, a dropped message was told by "dropped: " before its reason.
ALTER TABLE outbox ADD COLUMN status TEXT NOT NULL DEFAULT 'pending';
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
ALTER TABLE quarantine ADD COLUMN reason_class TEXT NOT NULL DEFAULT 'content';
UPDATE quarantine SET reason_class = CASE
    WHEN INSTR(LOWER(reason), '(limit max_') > 0 THEN 'limit'
    WHEN INSTR(LOWER(reason), 'fault while') > 0 THEN 'fault'
    WHEN INSTR(LOWER(reason), 'unknown partner') > 0 THEN 'unknown_partner'
    WHEN INSTR(LOWER(reason), 'reused msgid') > 0 THEN 'reused_msg_id'
    WHEN INSTR(LOWER(reason), 'signature') > 0 OR INSTR(LOWER(reason), 'signed') > 0
        OR INSTR(LOWER(reason), 'certificate') > 0 OR INSTR(LOWER(reason), 'digest') > 0
        OR INSTR(LOWER(reason), 'ds:') > 0 THEN 'signature'
    WHEN INSTR(LOWER(reason), 'fails its xsd') > 0 THEN 'schema'
    WHEN INSTR(LOWER(reason), 'malformed xml') > 0 OR INSTR(LOWER(reason), 'doctype') > 0
        OR INSTR(LOWER(reason), 'entity') > 0 OR INSTR(LOWER(reason), 'entities') > 0
        OR INSTR(LOWER(reason), 'document is') > 0 OR INSTR(LOWER(reason), 'bytes;') > 0 THEN 'malformed'
    WHEN INSTR(LOWER(reason), 'not supported') > 0 OR INSTR(LOWER(reason), 'not a supported') > 0
        OR INSTR(LOWER(reason), 'not a report') > 0 OR INSTR(LOWER(reason), 'expected a') > 0
        THEN 'unsupported'
    ELSE 'content' END;
