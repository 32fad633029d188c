-- Idempotency-Key (issue 10): the first answer to a request, replayed to every retry of it.
-- `key` is the token, the operation and the client's key; `fingerprint` the sha256 of the
-- request (method, path, body) so the same key with another body is refused. A row without a
-- status is a request in progress; its lease lets another process take over a request whose
-- process died before answering.
CREATE TABLE idempotent_requests (
    key           text PRIMARY KEY,
    fingerprint   char(64) NOT NULL,
    locked_until  timestamptz NOT NULL,
    status        integer,
    content_type  text,
    location      text,
    body          bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz
);

CREATE INDEX idempotent_requests_created_idx ON idempotent_requests (created_at);
