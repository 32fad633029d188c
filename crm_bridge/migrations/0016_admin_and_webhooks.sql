-- Administration without SQL (agents, campaigns, lead lists, tokens through the API and the CLI),
-- the audit of every such change, and outbound webhooks to the CRM (docs/admin.md, docs/webhooks.md).

-- The disposition codes a campaign's agents may pick (empty: every code) and its message prompts
-- (Asterisk sound names for the safe-harbor message and the answering-machine message).
ALTER TABLE campaigns
    ADD COLUMN dispositions text[] NOT NULL DEFAULT '{}',
    ADD COLUMN prompts      jsonb NOT NULL DEFAULT '{}'::jsonb;

-- A lead list: a named set of leads (a lead is on at most one list). Assigning a list to a
-- campaign makes its leads members of the campaign (campaign_leads, remembering the list), and
-- removing it retires the members that came from it and were not dialed to the end.
CREATE TABLE lead_lists (
    list_id      text PRIMARY KEY,
    name         text NOT NULL,
    description  text,
    active       boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE leads ADD COLUMN list_id text;
CREATE INDEX leads_list_idx ON leads (list_id);
ALTER TABLE campaign_leads ADD COLUMN list_id text;

CREATE TABLE campaign_lists (
    campaign_id  text NOT NULL,
    list_id      text NOT NULL,
    assigned_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, list_id)
);

-- Every administrative change: who (token and role), when, through what, and the entity before
-- and after (NULL before: created). Immutable, and chained in the audit trail (`admin_change`).
CREATE TABLE admin_changes (
    change_id    text PRIMARY KEY,
    changed_at   timestamptz NOT NULL,
    actor        text NOT NULL,
    actor_role   text NOT NULL,
    channel      text NOT NULL CHECK (channel IN ('api', 'cli')),
    action       text NOT NULL,
    entity       text NOT NULL,
    entity_id    text NOT NULL,
    before       jsonb,
    after        jsonb
);

CREATE INDEX admin_changes_entity_idx ON admin_changes (entity, entity_id, changed_at);

-- Webhook subscriptions: where to send which events, signed with the subscription's secret. During
-- a rotation the previous secret stays valid (a second signature) until previous_expires_at.
CREATE TABLE webhook_subscriptions (
    subscription_id      text PRIMARY KEY,
    url                  text NOT NULL,
    event_types          text[] NOT NULL,
    description          text,
    secret               text NOT NULL,
    previous_secret      text,
    previous_expires_at  timestamptz,
    active               boolean NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Every event, written in the transaction that wrote the row it tells of (the outbox's apply), so
-- no event is lost and none is made twice (event_id is derived from the row). `seq` orders the
-- events of one subject (a call) as they happened.
CREATE TABLE webhook_events (
    event_id     text PRIMARY KEY,
    seq          bigserial UNIQUE,
    event_type   text NOT NULL,
    subject      text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_events_time_idx ON webhook_events (occurred_at);

-- One delivery of one event to one subscription (a replay adds another). pending: due at
-- next_attempt_at; delivered; parked: retried for the subscription's whole window and given up,
-- until replayed.
CREATE TABLE webhook_deliveries (
    delivery_id      bigserial PRIMARY KEY,
    subscription_id  text NOT NULL REFERENCES webhook_subscriptions (subscription_id) ON DELETE CASCADE,
    event_id         text NOT NULL REFERENCES webhook_events (event_id),
    event_seq        bigint NOT NULL,
    subject          text NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'parked')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz,
    last_status      integer,
    last_error       text,
    delivered_at     timestamptz,
    replay           boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_order_idx ON webhook_deliveries (subscription_id, subject, event_seq)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_sub_idx ON webhook_deliveries (subscription_id, delivery_id DESC);

-- Every attempt: the delivery log.
CREATE TABLE webhook_attempts (
    attempt_id    bigserial PRIMARY KEY,
    delivery_id   bigint NOT NULL REFERENCES webhook_deliveries (delivery_id) ON DELETE CASCADE,
    attempted_at  timestamptz NOT NULL,
    status_code   integer,
    error         text,
    duration_ms   integer NOT NULL
);

CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id);
