-- Texts (SMS): every text sent or received, on the lead's record, with its gate decision and its
-- delivery receipts; campaigns' message templates; re-subscriptions (START) as consent evidence.
-- Outbound rows are versioned snapshots written through the outbox (a later version replaces an
-- earlier one); delivery receipts arrive separately and only touch the delivery_* columns, so a
-- late snapshot never undoes a receipt.

CREATE TABLE messages (
    message_id              text PRIMARY KEY,
    version                 bigint NOT NULL,
    direction               text NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    -- outbound: marketing, conversation, help_reply, opt_out_confirmation;
    -- inbound: the keyword it carried (opt_out, opt_in, help) or 'reply'.
    kind                    text NOT NULL,
    lead_id                 text,
    agent_id                text,
    campaign_id             text,
    from_number             text NOT NULL,
    to_number               text NOT NULL,
    body                    text NOT NULL,
    encoding                text NOT NULL CHECK (encoding IN ('gsm7', 'ucs2')),
    segments                integer NOT NULL CHECK (segments >= 0),
    template_id             text,
    -- sip (Asterisk, SIP MESSAGE) or http (a messaging provider's REST API).
    transport               text NOT NULL,
    provider_message_id     text,
    -- outbound: queued, checking, sending, sent, blocked, expired, failed, canceled; inbound: received.
    status                  text NOT NULL,
    status_detail           text,
    -- Delivery receipts: the latest status (delivered, undelivered, failed), its error, and all of them.
    delivery_status         text,
    delivery_error          text,
    delivered_at            timestamptz,
    compliance_decision_id  uuid,
    requested_by            text,
    created_at              timestamptz NOT NULL,
    sent_at                 timestamptz,
    updated_at              timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX messages_lead_idx ON messages (lead_id, created_at DESC);
CREATE INDEX messages_to_idx ON messages (to_number, created_at DESC);
CREATE INDEX messages_from_idx ON messages (from_number, created_at DESC);
CREATE INDEX messages_provider_idx ON messages (provider_message_id);

-- One row per delivery receipt (immutable); the latest is copied onto its message.
CREATE TABLE message_receipts (
    receipt_id           text PRIMARY KEY,
    message_id           text,
    provider_message_id  text NOT NULL,
    status               text NOT NULL,
    error                text,
    received_at          timestamptz NOT NULL
);

CREATE INDEX message_receipts_provider_idx ON message_receipts (provider_message_id);

-- A campaign's message templates, with merge fields ({first_name}, {agency_name}, ...). A
-- template that does not identify the agency is refused before it is stored.
CREATE TABLE message_templates (
    template_id  text PRIMARY KEY,
    campaign_id  text NOT NULL,
    name         text NOT NULL,
    body         text NOT NULL,
    created_by   text,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, name)
);

-- A consumer's START/UNSTOP after a texted revocation: the new consent's evidence. The opt-out
-- rows stay (immutable); the latest of an opt-out and an opt-in for a number decides.
CREATE TABLE opt_ins (
    opt_in_id   text PRIMARY KEY,
    phone       text NOT NULL,
    source      text NOT NULL,
    lead_id     text,
    message_id  text,
    created_at  timestamptz NOT NULL
);

CREATE INDEX opt_ins_phone_idx ON opt_ins (phone);

-- Which channel a gate decision was for, and the kind of text.
ALTER TABLE compliance_decisions ADD COLUMN channel text NOT NULL DEFAULT 'voice';
ALTER TABLE compliance_decisions ADD COLUMN text_kind text;
