-- Every time a recording's audio is handed out (HTTP API, CLI): who, when, what. Recordings of
-- Medicare sales calls are ePHI; access to them is audited (45 CFR 164.312(b)). Rows are
-- immutable, written through the outbox so an access during a PostgreSQL outage is not lost.

CREATE TABLE recording_accesses (
    access_id     uuid PRIMARY KEY,
    recording_id  text NOT NULL,
    call_id       text,
    -- The API token that asked (api_tokens.token_id); NULL from the command line.
    token_id      text,
    role          text NOT NULL,
    agent_id      text,
    channel       text NOT NULL,
    remote        text,
    bytes         bigint CHECK (bytes >= 0),
    accessed_at   timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX recording_accesses_recording_idx ON recording_accesses (recording_id, accessed_at);
