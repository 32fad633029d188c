-- A campaign's gate blocks of the day are read from the stored decisions when its runner
-- starts (CrmStore.gate_blocks: the figures survive a controller restart). compliance_decisions
-- holds every decision of every dial and text, so without this index each campaign start would
-- scan the whole table.
CREATE INDEX IF NOT EXISTS compliance_decisions_campaign_idx ON compliance_decisions (campaign_id, decided_at);
