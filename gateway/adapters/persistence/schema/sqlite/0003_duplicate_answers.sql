-- A bank's answer "duplicate file" (pain.002 group RJCT, reason DUPL) to one of our files: the
-- bank already has that MsgId (our resend after a crash) and refuses the copy only. It moves no
-- order and no file; kept for `gateway status` and the metrics.
CREATE TABLE IF NOT EXISTS duplicate_answers (
    partner          TEXT NOT NULL,
    msg_id           TEXT NOT NULL,
    original_msg_id  TEXT NOT NULL,
    reason_text      TEXT,
    received_at      TEXT NOT NULL,
    PRIMARY KEY (partner, msg_id)
);
