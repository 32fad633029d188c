-- Outbox records already applied, written in the same transaction as the apply itself, so a
-- record re-sent after a crash between the PostgreSQL commit and the local "delivered" mark
-- is recognised and skipped: exactly-once delivery (design.md decision 9).

CREATE TABLE outbox_applied (
    source_id   text NOT NULL,
    outbox_id   bigint NOT NULL,
    kind        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, outbox_id)
);
