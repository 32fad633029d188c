-- List imports (`dialer leads import`, POST /v1/lead-imports): each import's outcome, and on every
-- lead the import that created it and the file's custom fields.
--
-- An import is written in one transaction (its leads, consent rows, campaign memberships and the
-- lead_imports row together), so a lead_imports row means every accepted lead of that import is
-- in the CRM, and a retried import finds its row and writes nothing twice.

ALTER TABLE leads
    ADD COLUMN custom_fields jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN import_id     text;

CREATE TABLE lead_imports (
    import_id     text PRIMARY KEY,
    label         text NOT NULL,           -- the file's name, or what the API caller called it
    campaign_id   text,
    mapping       jsonb NOT NULL,
    -- rows, accepted, invalid, duplicate, rejected, and rows per reason (a row may have several)
    counts        jsonb NOT NULL,
    -- Dates of the DNC list copies the scrub used (federal, state:XX, litigator, ...): the
    -- evidence that the list was scrubbed against a current registry (47 CFR 64.1200(c)(2)(i)(D)).
    list_dates    jsonb NOT NULL,
    started_at    timestamptz NOT NULL,
    committed_at  timestamptz NOT NULL DEFAULT now()
);
