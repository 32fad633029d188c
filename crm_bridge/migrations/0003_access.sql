-- API credentials and idempotency keys for the HTTP API.

CREATE TABLE api_tokens (
    token_id    text PRIMARY KEY,
    -- sha256 of the secret; the secret itself is shown once and never stored.
    token_hash  char(64) NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    role        text NOT NULL CHECK (role IN ('crm', 'agent', 'supervisor', 'admin')),
    agent_id    text,
    label       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE idempotency_keys (
    key         text PRIMARY KEY,
    call_id     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
