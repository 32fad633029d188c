-- People who sign in to the web consoles (issue 13): agents, supervisors, admins. Machines keep
-- bearer tokens (api_tokens); people get a password and a session cookie.

CREATE TABLE users (
    user_id        text PRIMARY KEY,
    username       text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    role           text NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
    -- an agent's account speaks for exactly one agent; staff speak for none
    agent_id       text REFERENCES agents (agent_id),
    -- argon2id, PHC string format ($argon2id$v=19$m=...,t=...,p=...$salt$hash)
    password_hash  text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    disabled_at    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'agent') = (agent_id IS NOT NULL))
);

CREATE UNIQUE INDEX users_agent_idx ON users (agent_id) WHERE agent_id IS NOT NULL;

-- One signed-in browser. The cookie holds a random secret; only its sha256 is kept here.
CREATE TABLE user_sessions (
    session_id     text PRIMARY KEY,
    secret_hash    char(64) NOT NULL UNIQUE CHECK (secret_hash ~ '^[0-9a-f]{64}$'),
    user_id        text NOT NULL REFERENCES users (user_id),
    -- sent back by the page in X-CSRF-Token on every state-changing request
    csrf_token     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    remote         text
);

CREATE INDEX user_sessions_user_idx ON user_sessions (user_id) WHERE revoked_at IS NULL;

-- Wrong passwords, counted per user name over a sliding window (login throttling).
CREATE TABLE login_failures (
    username   text NOT NULL,
    failed_at  timestamptz NOT NULL DEFAULT now(),
    remote     text
);

CREATE INDEX login_failures_idx ON login_failures (username, failed_at);
