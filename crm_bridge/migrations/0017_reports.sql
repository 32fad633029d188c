-- Supervisor reports (docs/reports.md): the indexes the KPI queries read, the agents' state
-- history (occupancy), and the audit of campaign control changes (who, when, before, after).

-- KPI queries scan one period of calls and dispositions, grouped by agent or campaign. These
-- covering indexes let PostgreSQL answer from the index alone (index-only scans once vacuumed).
CREATE INDEX calls_report_idx ON calls (requested_at)
    INCLUDE (agent_id, campaign_id, direction, lead_answered_at, bridged_at, abandoned, amd_result, talk_seconds);
CREATE INDEX dispositions_report_idx ON dispositions (disposed_at)
    INCLUDE (agent_id, campaign_id, code, call_id, lead_id);
CREATE INDEX dispositions_agent_idx ON dispositions (agent_id, disposed_at);
CREATE INDEX dispositions_campaign_idx ON dispositions (campaign_id, disposed_at);
-- When a lead entered its current stage: the latest disposition that moved it.
CREATE INDEX dispositions_stage_moves_idx ON dispositions (lead_id, disposed_at DESC)
    INCLUDE (stage_after) WHERE stage_after IS DISTINCT FROM stage_before;
-- Speed-to-lead: leads created in a period.
CREATE INDEX leads_created_idx ON leads (created_at);
-- Recordings search by agent and campaign goes through the call.
CREATE INDEX recordings_search_idx ON recordings (recorded_at DESC, recording_id DESC) INCLUDE (call_id, duration_seconds);

-- Every change of an agent's session state (immutable rows, written through the outbox): the
-- interval a state lasted is up to the agent's next change. Occupancy is read from these.
CREATE TABLE agent_state_changes (
    change_id     text PRIMARY KEY,
    agent_id      text NOT NULL,
    state         text NOT NULL,
    since         timestamptz NOT NULL,
    version       bigint NOT NULL,
    session_id    text NOT NULL,
    campaign_ids  text[] NOT NULL DEFAULT '{}',
    call_id       text,
    pause_reason  text,
    -- When the state ended: the `since` of the session's next change, set when that arrives
    -- (NULL while it lasts, or when its controller died).
    ended_at      timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX agent_state_changes_session_idx ON agent_state_changes (session_id, version);
CREATE INDEX agent_state_changes_since_idx ON agent_state_changes (since)
    INCLUDE (agent_id, state, ended_at, campaign_ids);

-- Every campaign control action and settings change (immutable rows): who asked (the API token
-- and its role), when, and the settings before and after.
CREATE TABLE campaign_changes (
    change_id    uuid PRIMARY KEY,
    campaign_id  text NOT NULL,
    action       text NOT NULL,
    actor        text NOT NULL,
    actor_role   text NOT NULL,
    changed_at   timestamptz NOT NULL,
    before       jsonb NOT NULL DEFAULT '{}'::jsonb,
    after        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX campaign_changes_campaign_idx ON campaign_changes (campaign_id, changed_at DESC);

-- The predictive pacer's abandon setpoint for the campaign's rolling 30-day rate (NULL: the
-- pacer's default); never above the legal 3 % (47 CFR 64.1200(a)(7)) nor the campaign's ceiling.
ALTER TABLE campaigns ADD COLUMN abandon_setpoint numeric(5, 4)
    CHECK (abandon_setpoint IS NULL OR (abandon_setpoint > 0 AND abandon_setpoint <= max_abandon_rate));

-- Each supervisor's (or admin's) browser phone for monitoring: one `supervisorNN-web` endpoint
-- per person, assigned the first time their console asks for it and kept.
CREATE TABLE supervisor_phones (
    user_id      text PRIMARY KEY,
    endpoint     text NOT NULL UNIQUE,
    assigned_at  timestamptz NOT NULL DEFAULT now()
);
