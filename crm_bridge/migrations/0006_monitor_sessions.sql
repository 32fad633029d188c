-- Supervisors' monitoring sessions on live calls (listen, whisper, barge): who monitored which
-- call, from which endpoint, every mode asked for and when, when it started and ended and why.
-- Written through the outbox as versioned snapshots (a later version replaces an earlier one).

CREATE TABLE monitor_sessions (
    monitor_id           text PRIMARY KEY,
    version              bigint NOT NULL,
    call_id              text NOT NULL,
    call_kind            text NOT NULL,
    agent_id             text,
    campaign_id          text,
    supervisor_endpoint  text NOT NULL,
    -- The API token that asked for it (api_tokens.token_id).
    requested_by         text,
    state                text NOT NULL,
    mode                 text NOT NULL,
    -- [{"mode": "listen", "at": "2026-...Z"}, ...]: every mode asked for, in order.
    modes                jsonb NOT NULL DEFAULT '[]'::jsonb,
    requested_at         timestamptz NOT NULL,
    answered_at          timestamptz,
    ended_at             timestamptz,
    end_reason           text,
    end_detail           text,
    supervisor_cause     integer,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX monitor_sessions_call_idx ON monitor_sessions (call_id);
CREATE INDEX monitor_sessions_requested_idx ON monitor_sessions (requested_at DESC);
