-- The tamper-evident audit trail (docs/evidence.md): every write to an audited table is appended,
-- in the same transaction, to a hash chain (one chain per kind of record: compliance decisions,
-- opt-outs, consents, dispositions, calls, recordings, recording accesses, monitoring sessions,
-- evidence packets; texts when they exist). Each entry carries the hash of the one before it,
-- so an edited, deleted or reordered entry breaks every link after it; signed checkpoints pin
-- the chains' heads with an Ed25519 key kept outside the database.

-- When the trail began: rows of audited tables older than this are reported as not covered
-- (they were written before the chain existed), not as tampered.
CREATE TABLE audit_trail (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    started_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO audit_trail DEFAULT VALUES;

CREATE TABLE audit_entries (
    chain       text NOT NULL,
    seq         bigint NOT NULL CHECK (seq >= 1),
    record_key  text NOT NULL,
    applied_at  timestamptz NOT NULL,
    -- The outbox record that wrote the row (`source_id:outbox_id`), NULL for a direct write.
    origin      text,
    -- The row as written, canonical JSON (RFC 8785): exactly the bytes that are hashed.
    row_json    text NOT NULL,
    prev_hash   char(64) NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    entry_hash  char(64) NOT NULL CHECK (entry_hash ~ '^[0-9a-f]{64}$'),
    PRIMARY KEY (chain, seq),
    -- Whatever the writer, two entries can never follow the same one: the chain cannot fork.
    UNIQUE (chain, prev_hash)
);

CREATE INDEX audit_entries_key_idx ON audit_entries (chain, record_key, seq);

-- A signed statement of every chain's head at one instant. `statement` is the exact canonical
-- JSON that was signed; `heads` repeats it for queries.
CREATE TABLE audit_checkpoints (
    checkpoint_id  bigserial PRIMARY KEY,
    signed_at      timestamptz NOT NULL,
    statement      text NOT NULL,
    key_id         text NOT NULL,
    public_key     text NOT NULL,
    signature      text NOT NULL
);

CREATE TABLE audit_checkpoint_heads (
    checkpoint_id  bigint NOT NULL REFERENCES audit_checkpoints (checkpoint_id),
    chain          text NOT NULL,
    seq            bigint NOT NULL,
    entry_hash     char(64) NOT NULL,
    PRIMARY KEY (checkpoint_id, chain)
);

CREATE INDEX audit_checkpoint_heads_seq_idx ON audit_checkpoint_heads (chain, seq);

-- Every evidence packet made (who, for whom, what it held): itself audited and chained.
CREATE TABLE evidence_packets (
    packet_id        text PRIMARY KEY,
    created_at       timestamptz NOT NULL,
    requested_by     text NOT NULL,
    role             text NOT NULL,
    channel          text NOT NULL,
    subject          jsonb NOT NULL,
    manifest_sha256  char(64) NOT NULL CHECK (manifest_sha256 ~ '^[0-9a-f]{64}$'),
    files            integer NOT NULL CHECK (files >= 0),
    recording_ids    jsonb NOT NULL DEFAULT '[]'::jsonb,
    legal_hold       boolean NOT NULL DEFAULT false,
    checkpoint_id    bigint
);

CREATE INDEX evidence_packets_created_idx ON evidence_packets (created_at DESC);

-- Lookups the evidence packet makes by number.
CREATE INDEX calls_lead_number_idx ON calls (lead_number, requested_at DESC);
CREATE INDEX opt_outs_lead_idx ON opt_outs (lead_id);
