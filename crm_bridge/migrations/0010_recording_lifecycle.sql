-- Recordings at CMS scale (docs/recordings.md): channels, retention by line of business, legal
-- hold, purge tombstones, the lifecycle audit and the integrity verifications.

-- Sets each recording's retain_until (recordings.retention): medicare_advantage and
-- medicare_part_d keep 10 years (42 CFR 422.504(d), 423.505(d)); others the TSR's 5 (16 CFR
-- 310.5(b)) or more; NULL (unknown) keeps the longest.
ALTER TABLE campaigns ADD COLUMN line_of_business text;

ALTER TABLE recordings
    -- 1: the call mixed; 2: agent and lead apart (channel_layout 'agent,lead', left to right).
    ADD COLUMN channels          smallint NOT NULL DEFAULT 1 CHECK (channels IN (1, 2)),
    ADD COLUMN channel_layout    text NOT NULL DEFAULT 'mixed',
    ADD COLUMN line_of_business  text,
    -- A legal hold stops every purge, whatever retain_until says; who set it and why are kept.
    ADD COLUMN legal_hold        boolean NOT NULL DEFAULT false,
    ADD COLUMN legal_hold_by     text,
    ADD COLUMN legal_hold_reason text,
    ADD COLUMN legal_hold_at     timestamptz,
    -- A purged recording's row stays as its tombstone: the file and its data key are destroyed.
    ADD COLUMN purged_at         timestamptz,
    ADD COLUMN purged_by         text,
    ADD COLUMN purge_reason      text,
    ADD CONSTRAINT recordings_hold_says_who_and_why
        CHECK (NOT legal_hold OR (legal_hold_by IS NOT NULL AND legal_hold_reason IS NOT NULL)),
    ADD CONSTRAINT recordings_held_are_never_purged CHECK (purged_at IS NULL OR NOT legal_hold);

CREATE INDEX recordings_due_idx ON recordings (retain_until) WHERE purged_at IS NULL AND NOT legal_hold;
CREATE INDEX recordings_recorded_idx ON recordings (recorded_at);

-- What was done to a recording besides playing it (plays are in recording_accesses): holds set
-- and released, purges. Immutable rows.
CREATE TABLE recording_events (
    event_id      uuid PRIMARY KEY,
    recording_id  text NOT NULL,
    action        text NOT NULL CHECK (action IN ('legal_hold_set', 'legal_hold_released', 'purged')),
    actor         text NOT NULL,
    reason        text,
    details       jsonb NOT NULL DEFAULT '{}'::jsonb,
    happened_at   timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX recording_events_recording_idx ON recording_events (recording_id, happened_at);

-- Each `dialer recording verify` run: what it checked and what it found.
CREATE TABLE recording_verifications (
    verification_id uuid PRIMARY KEY,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL,
    since           timestamptz,
    checked         integer NOT NULL CHECK (checked >= 0),
    ok              integer NOT NULL CHECK (ok >= 0),
    missing         integer NOT NULL CHECK (missing >= 0),
    damaged         integer NOT NULL CHECK (damaged >= 0),
    orphaned        integer NOT NULL CHECK (orphaned >= 0),
    problems        jsonb NOT NULL DEFAULT '[]'::jsonb
);
