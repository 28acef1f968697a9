-- Several instances share the work: outbox messages and batch groups are claimed before they
-- are worked on, for a while; a claim whose holder died expires and is taken over.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS claim_until TIMESTAMPTZ;

CREATE TABLE IF NOT EXISTS work_claims (
    kind        TEXT NOT NULL,
    claim_key   TEXT NOT NULL,
    owner       TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, claim_key)
);
