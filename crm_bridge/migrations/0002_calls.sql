-- Call log, dispositions, recordings, compliance audit and opt-outs.
-- References between these tables are plain indexed columns, not foreign keys: rows arrive
-- asynchronously through outboxes (possibly several controllers'), and an audit row must never
-- be refused because the row it points at has not arrived yet.

CREATE TABLE calls (
    call_id                 text PRIMARY KEY,
    -- Snapshot version: a later snapshot replaces an earlier one, never the reverse.
    version                 bigint NOT NULL,
    direction               text NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    lead_id                 text,
    agent_id                text,
    campaign_id             text,
    lead_number             text,
    agent_endpoint          text,
    caller_id               text,
    requested_at            timestamptz NOT NULL,
    agent_answered_at       timestamptz,
    lead_ringing_at         timestamptz,
    lead_answered_at        timestamptz,
    bridged_at              timestamptz,
    ended_at                timestamptz,
    outcome                 text,
    hangup_cause            integer,
    hangup_cause_text       text,
    sip_code                integer,
    ring_seconds            double precision,
    talk_seconds            double precision,
    total_seconds           double precision,
    recording_id            text,
    compliance_decision_id  uuid,
    amd_result              text,
    amd_cause               text,
    greeting_ended_at       timestamptz,
    safe_harbor_played      boolean NOT NULL DEFAULT false,
    -- 47 CFR 64.1200(a)(7): a live person not connected to an agent within 2 s of the greeting.
    abandoned               boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX calls_lead_idx ON calls (lead_id, requested_at DESC);
CREATE INDEX calls_agent_idx ON calls (agent_id, requested_at DESC);
CREATE INDEX calls_campaign_idx ON calls (campaign_id, requested_at DESC);
CREATE INDEX calls_requested_idx ON calls (requested_at DESC);

CREATE TABLE dispositions (
    disposition_id  text PRIMARY KEY,
    call_id         text,
    lead_id         text,
    agent_id        text,
    campaign_id     text,
    code            text NOT NULL,
    notes           text,
    callback_at     timestamptz,
    -- The pipeline move this disposition caused, computed when it was applied.
    stage_before    text,
    stage_after     text,
    disposed_at     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX dispositions_call_idx ON dispositions (call_id);
CREATE INDEX dispositions_lead_idx ON dispositions (lead_id, disposed_at DESC);

CREATE TABLE recordings (
    recording_id      text PRIMARY KEY,
    call_id           text,
    lead_id           text,
    storage_uri       text NOT NULL,
    format            text NOT NULL,
    duration_seconds  double precision CHECK (duration_seconds >= 0),
    size_bytes        bigint CHECK (size_bytes >= 0),
    sha256            char(64) NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    encryption_key_id text,
    -- CMS (42 CFR 422.2274(g)(2)(ii)): marketing/sales call recordings kept 10 years.
    retain_until      timestamptz,
    recorded_at       timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX recordings_call_idx ON recordings (call_id);
CREATE INDEX recordings_lead_idx ON recordings (lead_id);

-- Every decision of the compliance gate, allowed or not: the audit trail for TCPA/TSR defense.
CREATE TABLE compliance_decisions (
    decision_id    uuid PRIMARY KEY,
    decided_at     timestamptz NOT NULL,
    phone          text NOT NULL,
    lead_id        text,
    campaign_id    text,
    purpose        text NOT NULL,
    allowed        boolean NOT NULL,
    reasons        jsonb NOT NULL DEFAULT '[]'::jsonb,
    timezones      jsonb NOT NULL DEFAULT '[]'::jsonb,
    local_times    jsonb NOT NULL DEFAULT '[]'::jsonb,
    data_versions  jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX compliance_decisions_phone_idx ON compliance_decisions (phone, decided_at DESC);
CREATE INDEX compliance_decisions_lead_idx ON compliance_decisions (lead_id, decided_at DESC);

-- Company-specific do-not-call list, 47 CFR 64.1200(d)(3): honored on every channel.
CREATE TABLE opt_outs (
    opt_out_id  text PRIMARY KEY,
    phone       text NOT NULL,
    source      text NOT NULL,
    lead_id     text,
    call_id     text,
    created_at  timestamptz NOT NULL
);

CREATE INDEX opt_outs_phone_idx ON opt_outs (phone);
