-- What an allowed contact had to do besides being allowed, e.g. announce the recording to a lead
-- who may be in an all-party-consent state: [{"code", "message", "citation"}].
ALTER TABLE compliance_decisions ADD COLUMN notices jsonb NOT NULL DEFAULT '[]'::jsonb;
