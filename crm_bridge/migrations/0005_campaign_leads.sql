-- Campaign membership of leads and their dialing history, read by the campaign hopper.
-- One row per (campaign, lead); membership_id is campaign_id || ':' || lead_id so the outbox
-- can upsert it by a single key. Attempt counts and next-attempt times are written after
-- every attempt (retry rules per outcome); a scheduled callback may belong to one agent.

CREATE TABLE campaign_leads (
    membership_id      text PRIMARY KEY,
    campaign_id        text NOT NULL,
    lead_id            text NOT NULL,
    -- Higher first; speed-to-lead entries get the highest.
    priority           integer NOT NULL DEFAULT 0,
    attempts           integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_attempt_at    timestamptz,
    next_attempt_at    timestamptz,
    last_outcome       text,
    last_call_id       text,
    callback_at        timestamptz,
    callback_agent_id  text,
    done               boolean NOT NULL DEFAULT false,
    done_reason        text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, lead_id)
);

CREATE INDEX campaign_leads_due_idx ON campaign_leads (campaign_id, done, priority DESC, next_attempt_at);
