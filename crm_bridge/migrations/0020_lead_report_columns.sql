-- Two figures the reports read, kept on the lead so that a report reads the leads alone
-- (docs/reports.md, "Figures kept on the lead").
--
-- Speed-to-lead without reading the month's calls: each lead keeps its first dial (the earliest
-- outbound call to it requested at or after the lead's creation; a dial "before" it, by a clock
-- skew between the controller and the CRM, does not count; equal request times ordered by call
-- id, as the raw computation, `crm_bridge.reports.kpis(rollups=False)`, orders them), with that
-- call's agent and campaign, which the reports group and scope by.
--
-- The pipeline board without grouping every disposition: each lead keeps when its latest stage
-- move was disposed (NULL: never moved; the board then counts the lead's age in its stage from
-- its creation), as `crm_bridge.reports.pipeline(kept=False)` computes it.
--
-- Kept by triggers in the same transaction as the rows, as the roll-ups of 0019: a statement on
-- `calls` recomputes the first dial of the leads whose outbound calls it touched (a later
-- snapshot of the first call may name its agent; a call removed or moved to another lead moves
-- the first); a statement on `dispositions` the latest move of the leads it touched (the apply
-- inserts a disposition, then sets its stage_before / stage_after); a statement inserting leads
-- finds the calls and dispositions already there for them (plain columns, not foreign keys); a
-- lead re-dated recomputes its first dial.

ALTER TABLE leads
    ADD COLUMN first_dial_at timestamptz,
    ADD COLUMN first_dial_agent_id text,
    ADD COLUMN first_dial_campaign_id text,
    ADD COLUMN stage_moved_at timestamptz;

-- The leads a speed-to-lead report reads (not from a list import), with what it reads.
CREATE INDEX leads_speed_to_lead_idx ON leads (created_at)
    INCLUDE (first_dial_at, first_dial_agent_id, first_dial_campaign_id) WHERE import_id IS NULL;
-- Each stage's most recently moved leads in the board's order; its per-stage counts and ages.
CREATE INDEX leads_board_idx ON leads (pipeline_stage, (coalesce(stage_moved_at, created_at)) DESC, lead_id)
    INCLUDE (owner_agent_id);

-- A lead's first dial as a row (none: no row), through calls_lead_idx.
CREATE FUNCTION lead_first_dial(lead text, created timestamptz)
RETURNS TABLE (requested_at timestamptz, agent_id text, campaign_id text)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT c.requested_at, c.agent_id, c.campaign_id FROM calls c
    WHERE c.lead_id = lead AND c.direction = 'outbound' AND c.requested_at >= created
    ORDER BY c.requested_at, c.call_id LIMIT 1
$$;

-- A lead's latest stage move, through dispositions_stage_moves_idx.
CREATE FUNCTION lead_stage_moved_at(lead text) RETURNS timestamptz LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT max(disposed_at) FROM dispositions WHERE lead_id = lead AND stage_after IS DISTINCT FROM stage_before
$$;

-- A lead re-dated or renamed: its first dial and latest move among the rows there are.
CREATE FUNCTION leads_report_columns_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT f.requested_at, f.agent_id, f.campaign_id INTO NEW.first_dial_at, NEW.first_dial_agent_id,
        NEW.first_dial_campaign_id
    FROM (SELECT 1) one LEFT JOIN LATERAL lead_first_dial(NEW.lead_id, NEW.created_at) f ON true;
    IF NEW.lead_id IS DISTINCT FROM OLD.lead_id THEN
        NEW.stage_moved_at := lead_stage_moved_at(NEW.lead_id);
    END IF;
    RETURN NEW;
END
$$;

-- Leads inserted after some of their calls or dispositions (plain columns, not foreign keys):
-- found by one join per statement, not a lookup per row (a list import COPYs a million leads
-- that nothing references yet).
CREATE FUNCTION leads_report_columns_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM leads_new n JOIN calls c ON c.lead_id = n.lead_id WHERE c.direction = 'outbound') THEN
        UPDATE leads l SET first_dial_at = f.requested_at, first_dial_agent_id = f.agent_id,
                           first_dial_campaign_id = f.campaign_id
        FROM leads_new n CROSS JOIN LATERAL lead_first_dial(n.lead_id, n.created_at) f
        WHERE l.lead_id = n.lead_id;
    END IF;
    IF EXISTS (SELECT 1 FROM leads_new n JOIN dispositions d ON d.lead_id = n.lead_id
               WHERE d.stage_after IS DISTINCT FROM d.stage_before) THEN
        UPDATE leads l SET stage_moved_at = m.moved_at
        FROM (SELECT d.lead_id, max(d.disposed_at) AS moved_at FROM leads_new n JOIN dispositions d
              ON d.lead_id = n.lead_id WHERE d.stage_after IS DISTINCT FROM d.stage_before GROUP BY 1) m
        WHERE l.lead_id = m.lead_id;
    END IF;
    RETURN NULL;
END
$$;

-- The leads a statement touched (`source`: their lead ids), their figures recomputed where they
-- moved. The rows are locked first, in lead order (two statements on the same leads wait for
-- each other, not deadlock), and the recompute is a statement of its own: under READ COMMITTED
-- it sees a concurrent transaction's call committed while this one waited for the lock.
CREATE FUNCTION report_first_dials_sql(source text) RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
    SELECT format($q$
        PERFORM 1 FROM leads WHERE lead_id IN (%1$s) ORDER BY lead_id FOR NO KEY UPDATE;
        UPDATE leads l SET first_dial_at = f.requested_at, first_dial_agent_id = f.agent_id,
                           first_dial_campaign_id = f.campaign_id
        FROM leads t LEFT JOIN LATERAL lead_first_dial(t.lead_id, t.created_at) f ON true
        WHERE t.lead_id IN (%1$s) AND l.lead_id = t.lead_id
          AND (l.first_dial_at, l.first_dial_agent_id, l.first_dial_campaign_id)
              IS DISTINCT FROM (f.requested_at, f.agent_id, f.campaign_id)
    $q$, source)
$fn$;

CREATE FUNCTION report_stage_moves_sql(source text) RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
    SELECT format($q$
        PERFORM 1 FROM leads WHERE lead_id IN (%1$s) ORDER BY lead_id FOR NO KEY UPDATE;
        UPDATE leads l SET stage_moved_at = lead_stage_moved_at(l.lead_id)
        WHERE l.lead_id IN (%1$s) AND l.stage_moved_at IS DISTINCT FROM lead_stage_moved_at(l.lead_id)
    $q$, source)
$fn$;

-- One trigger function per table and operation, the SQL above written into it (planned once
-- per session, as 0019's). An update counts only where it changed what the figure reads: most
-- call snapshots (ringing, answered, ended) and the apply's other disposition updates do not.
DO $$
DECLARE
    dials_new constant text := 'FROM calls_new WHERE direction = ''outbound'' AND lead_id IS NOT NULL';
    dials_old constant text := 'FROM calls_old WHERE direction = ''outbound'' AND lead_id IS NOT NULL';
    dials_changed constant text := 'FROM calls_new n JOIN calls_old o USING (call_id) '
        'WHERE (n.lead_id, n.direction, n.requested_at, n.agent_id, n.campaign_id) '
        'IS DISTINCT FROM (o.lead_id, o.direction, o.requested_at, o.agent_id, o.campaign_id) '
        'AND ''outbound'' IN (n.direction, o.direction)';
    moves_new constant text := 'FROM dispositions_new WHERE stage_after IS DISTINCT FROM stage_before '
        'AND lead_id IS NOT NULL';
    moves_old constant text := 'FROM dispositions_old WHERE stage_after IS DISTINCT FROM stage_before '
        'AND lead_id IS NOT NULL';
    moves_changed constant text := 'FROM dispositions_new n JOIN dispositions_old o USING (disposition_id) '
        'WHERE (n.lead_id, n.disposed_at, n.stage_before, n.stage_after) '
        'IS DISTINCT FROM (o.lead_id, o.disposed_at, o.stage_before, o.stage_after)';
    trigger_body constant text := 'BEGIN IF EXISTS (SELECT 1 %s) THEN %s; END IF; RETURN NULL; END';
    new_function constant text := 'CREATE FUNCTION %I() RETURNS trigger LANGUAGE plpgsql AS %L';
BEGIN
    EXECUTE format(new_function, 'calls_first_dial_insert',
        format(trigger_body, dials_new, report_first_dials_sql('SELECT lead_id ' || dials_new)));
    EXECUTE format(new_function, 'calls_first_dial_update',
        format(trigger_body, dials_changed, report_first_dials_sql(
            'SELECT n.lead_id ' || dials_changed || ' UNION SELECT o.lead_id ' || dials_changed)));
    EXECUTE format(new_function, 'calls_first_dial_delete',
        format(trigger_body, dials_old, report_first_dials_sql('SELECT lead_id ' || dials_old)));
    EXECUTE format(new_function, 'dispositions_stage_move_insert',
        format(trigger_body, moves_new, report_stage_moves_sql('SELECT lead_id ' || moves_new)));
    EXECUTE format(new_function, 'dispositions_stage_move_update',
        format(trigger_body, moves_changed, report_stage_moves_sql(
            'SELECT n.lead_id ' || moves_changed || ' UNION SELECT o.lead_id ' || moves_changed)));
    EXECUTE format(new_function, 'dispositions_stage_move_delete',
        format(trigger_body, moves_old, report_stage_moves_sql('SELECT lead_id ' || moves_old)));
END
$$;

-- Back-fill from the rows there are, with writers held off until the triggers are in place.
LOCK TABLE calls, dispositions, leads IN SHARE ROW EXCLUSIVE MODE;

UPDATE leads l SET first_dial_at = f.requested_at, first_dial_agent_id = f.agent_id,
                   first_dial_campaign_id = f.campaign_id
FROM leads t CROSS JOIN LATERAL lead_first_dial(t.lead_id, t.created_at) f
WHERE l.lead_id = t.lead_id;

UPDATE leads l SET stage_moved_at = m.moved_at
FROM (SELECT lead_id, max(disposed_at) AS moved_at FROM dispositions WHERE stage_after IS DISTINCT FROM stage_before
      GROUP BY lead_id) m
WHERE l.lead_id = m.lead_id;

CREATE TRIGGER leads_report_columns_update BEFORE UPDATE OF lead_id, created_at ON leads
    FOR EACH ROW EXECUTE FUNCTION leads_report_columns_row();
CREATE TRIGGER leads_report_columns_insert AFTER INSERT ON leads REFERENCING NEW TABLE AS leads_new
    FOR EACH STATEMENT EXECUTE FUNCTION leads_report_columns_insert();
CREATE TRIGGER calls_first_dial_insert AFTER INSERT ON calls REFERENCING NEW TABLE AS calls_new
    FOR EACH STATEMENT EXECUTE FUNCTION calls_first_dial_insert();
CREATE TRIGGER calls_first_dial_update AFTER UPDATE ON calls REFERENCING OLD TABLE AS calls_old NEW TABLE AS calls_new
    FOR EACH STATEMENT EXECUTE FUNCTION calls_first_dial_update();
CREATE TRIGGER calls_first_dial_delete AFTER DELETE ON calls REFERENCING OLD TABLE AS calls_old
    FOR EACH STATEMENT EXECUTE FUNCTION calls_first_dial_delete();
CREATE TRIGGER dispositions_stage_move_insert AFTER INSERT ON dispositions REFERENCING NEW TABLE AS dispositions_new
    FOR EACH STATEMENT EXECUTE FUNCTION dispositions_stage_move_insert();
CREATE TRIGGER dispositions_stage_move_update AFTER UPDATE ON dispositions
    REFERENCING OLD TABLE AS dispositions_old NEW TABLE AS dispositions_new
    FOR EACH STATEMENT EXECUTE FUNCTION dispositions_stage_move_update();
CREATE TRIGGER dispositions_stage_move_delete AFTER DELETE ON dispositions REFERENCING OLD TABLE AS dispositions_old
    FOR EACH STATEMENT EXECUTE FUNCTION dispositions_stage_move_delete();
