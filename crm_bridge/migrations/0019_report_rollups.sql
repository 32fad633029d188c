-- Hourly roll-ups of the report KPIs (docs/reports.md): a month's report sums about 720 rows per
-- agent and campaign instead of reading a million calls. Buckets are UTC hours, so they cut any
-- agency time zone with whole-hour offsets exactly, whatever zone a report asks for; a report
-- reads raw rows only for the part of its period that is not whole hours (half-hour zones).
--
-- They are kept by statement-level triggers on `calls`, `dispositions` and `agent_state_changes`
-- (occupancy), so they change in the
-- same transaction as the rows (the outbox's apply, a COPY, an admin's SQL alike): a replayed
-- outbox entry changes no row (an older call snapshot, a known disposition id) and so changes
-- no roll-up. Rows are added and subtracted, never recomputed by time: a roll-up row whose
-- counts went back to zero stays (harmless).

-- Which KPIs a disposition code counts for. Must match crm_bridge.dispositions.contact_codes()
-- and the funnel codes (tests/reports/test_rollups.py checks it).
CREATE FUNCTION report_disposition_kpis(code text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN code IN ('contacted', 'callback', 'not_interested', 'appointment_set', 'appointment_held',
                              'sale', 'policy_issued', 'nurture', 'lost', 'do_not_call')
                THEN ARRAY['contacts'] ELSE ARRAY[]::text[] END
        || CASE code WHEN 'appointment_set' THEN ARRAY['appts_set'] WHEN 'appointment_held' THEN ARRAY['appts_held']
                     WHEN 'sale' THEN ARRAY['app_pending'] WHEN 'policy_issued' THEN ARRAY['issued']
                     ELSE ARRAY[]::text[] END
$$;

-- A live answer as the 3 % rule counts it (compliance_rules.telemarketing.LIVE_ANSWER_AMD_RESULTS).
CREATE FUNCTION report_live_answer(amd_result text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(amd_result IN ('HUMAN', 'NOTSURE'), false)
$$;

-- Calls by the UTC hour of `requested_at`, agent and campaign (both may be NULL: an unconnected
-- predictive dial has no agent).
CREATE TABLE call_rollups (
    hour          timestamptz NOT NULL,
    agent_id      text,
    campaign_id   text,
    -- Call rows in the bucket: a report lists an agent or campaign that has any.
    calls         bigint NOT NULL DEFAULT 0,
    dials         bigint NOT NULL DEFAULT 0,
    answered      bigint NOT NULL DEFAULT 0,
    people        bigint NOT NULL DEFAULT 0,
    connected     bigint NOT NULL DEFAULT 0,
    abandoned     bigint NOT NULL DEFAULT 0,
    inbound       bigint NOT NULL DEFAULT 0,
    handled       bigint NOT NULL DEFAULT 0,
    -- numeric: adding and subtracting snapshots' seconds never drifts as float sums would.
    talk_seconds  numeric NOT NULL DEFAULT 0,
    CONSTRAINT call_rollups_key UNIQUE NULLS NOT DISTINCT (hour, agent_id, campaign_id)
);

CREATE INDEX call_rollups_agent_idx ON call_rollups (agent_id, hour);
CREATE INDEX call_rollups_campaign_idx ON call_rollups (campaign_id, hour);

-- Disposition KPIs: each call counts once per KPI, in the UTC hour and for the agent and
-- campaign of its earliest disposition with that KPI (a correction later does not count it
-- again; a disposition without a call stands alone).
CREATE TABLE disposition_rollups (
    hour         timestamptz NOT NULL,
    agent_id     text,
    campaign_id  text,
    -- Disposition rows in the bucket (every one, first or not, counting for a KPI or not).
    dispositions bigint NOT NULL DEFAULT 0,
    contacts     bigint NOT NULL DEFAULT 0,
    appts_set    bigint NOT NULL DEFAULT 0,
    appts_held   bigint NOT NULL DEFAULT 0,
    app_pending  bigint NOT NULL DEFAULT 0,
    issued       bigint NOT NULL DEFAULT 0,
    CONSTRAINT disposition_rollups_key UNIQUE NULLS NOT DISTINCT (hour, agent_id, campaign_id)
);

CREATE INDEX disposition_rollups_agent_idx ON disposition_rollups (agent_id, hour);
CREATE INDEX disposition_rollups_campaign_idx ON disposition_rollups (campaign_id, hour);

-- The SQL that adds call rows' contributions, signed (`source` yields `sign` and the calls' columns:
-- +1 a row as it is now, -1 as it was): written into the trigger functions below, and run once
-- by the back-fill.
CREATE FUNCTION report_calls_sql(source text) RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
    SELECT format($q$
        INSERT INTO call_rollups AS r (hour, agent_id, campaign_id, calls, dials, answered, people, connected, abandoned,
                                       inbound, handled, talk_seconds)
        SELECT * FROM (
            SELECT date_trunc('hour', requested_at, 'UTC') AS hour, agent_id, campaign_id, sum(sign) AS calls,
                   sum(sign * (direction = 'outbound')::int) AS dials,
                   sum(sign * (direction = 'outbound' AND lead_answered_at IS NOT NULL)::int) AS answered,
                   sum(sign * (direction = 'outbound' AND report_live_answer(amd_result))::int) AS people,
                   sum(sign * (bridged_at IS NOT NULL)::int) AS connected,
                   sum(sign * (abandoned AND report_live_answer(amd_result))::int) AS abandoned,
                   sum(sign * (direction = 'inbound')::int) AS inbound,
                   sum(sign * (bridged_at IS NOT NULL AND agent_id IS NOT NULL)::int) AS handled,
                   coalesce(sum(sign * talk_seconds::numeric)
                            FILTER (WHERE bridged_at IS NOT NULL AND agent_id IS NOT NULL), 0) AS talk_seconds
            FROM (%s) c GROUP BY 1, 2, 3) s
        -- Only buckets that changed (a newer snapshot of a ringing call, a recording linked: none).
        WHERE (calls, dials, answered, people, connected, abandoned, inbound, handled, talk_seconds)
              IS DISTINCT FROM (0, 0, 0, 0, 0, 0, 0, 0, 0)
        -- A fixed order: two transactions touching the same buckets lock them in the same order.
        ORDER BY 1, 2, 3
        ON CONFLICT ON CONSTRAINT call_rollups_key DO UPDATE SET
            calls = r.calls + EXCLUDED.calls, dials = r.dials + EXCLUDED.dials, answered = r.answered + EXCLUDED.answered,
            people = r.people + EXCLUDED.people, connected = r.connected + EXCLUDED.connected,
            abandoned = r.abandoned + EXCLUDED.abandoned, inbound = r.inbound + EXCLUDED.inbound,
            handled = r.handled + EXCLUDED.handled, talk_seconds = r.talk_seconds + EXCLUDED.talk_seconds
    $q$, source)
$fn$;

-- The change a set of disposition rows made: the firsts per call and KPI over the calls they
-- touch as they are now, minus those firsts as they were (`added`: the rows as they are now
-- among the changed ones; `removed`: the changed ones as they were).
CREATE FUNCTION report_dispositions_sql(added text, removed text) RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
    SELECT format($q$
        WITH added AS (%1$s), removed AS (%2$s),
        touched AS (SELECT call_id, disposition_id FROM added UNION SELECT call_id, disposition_id FROM removed),
        now_rows AS (
            SELECT d.* FROM dispositions d WHERE d.call_id IN (SELECT call_id FROM touched)
            UNION ALL
            SELECT d.* FROM dispositions d WHERE d.call_id IS NULL
                AND d.disposition_id IN (SELECT disposition_id FROM touched WHERE call_id IS NULL)),
        then_rows AS (
            SELECT n.* FROM now_rows n WHERE NOT EXISTS (SELECT 1 FROM added a WHERE a.disposition_id = n.disposition_id)
            UNION ALL SELECT * FROM removed),
        firsts AS (
            SELECT DISTINCT ON (coalesce(call_id, disposition_id), kpi) 1 AS sign, hour, agent_id, campaign_id, kpi
            FROM (SELECT *, date_trunc('hour', disposed_at, 'UTC') AS hour FROM now_rows) n
            CROSS JOIN LATERAL unnest(report_disposition_kpis(code)) AS k(kpi)
            ORDER BY coalesce(call_id, disposition_id), kpi, disposed_at, disposition_id),
        firsts_then AS (
            SELECT DISTINCT ON (coalesce(call_id, disposition_id), kpi) -1 AS sign, hour, agent_id, campaign_id, kpi
            FROM (SELECT *, date_trunc('hour', disposed_at, 'UTC') AS hour FROM then_rows) t
            CROSS JOIN LATERAL unnest(report_disposition_kpis(code)) AS k(kpi)
            ORDER BY coalesce(call_id, disposition_id), kpi, disposed_at, disposition_id)
        INSERT INTO disposition_rollups AS r (hour, agent_id, campaign_id, dispositions, contacts, appts_set, appts_held,
                                              app_pending, issued)
        SELECT * FROM (
            SELECT hour, agent_id, campaign_id, coalesce(sum(sign) FILTER (WHERE kpi = 'row'), 0) AS dispositions,
                   coalesce(sum(sign) FILTER (WHERE kpi = 'contacts'), 0) AS contacts,
                   coalesce(sum(sign) FILTER (WHERE kpi = 'appts_set'), 0) AS appts_set,
                   coalesce(sum(sign) FILTER (WHERE kpi = 'appts_held'), 0) AS appts_held,
                   coalesce(sum(sign) FILTER (WHERE kpi = 'app_pending'), 0) AS app_pending,
                   coalesce(sum(sign) FILTER (WHERE kpi = 'issued'), 0) AS issued
            FROM (SELECT * FROM firsts UNION ALL SELECT * FROM firsts_then
                  UNION ALL SELECT 1, date_trunc('hour', disposed_at, 'UTC'), agent_id, campaign_id, 'row' FROM added
                  UNION ALL SELECT -1, date_trunc('hour', disposed_at, 'UTC'), agent_id, campaign_id, 'row' FROM removed
                  ) f GROUP BY 1, 2, 3) s
        -- Only buckets that changed (a correction after the first disposition: none).
        WHERE (dispositions, contacts, appts_set, appts_held, app_pending, issued) IS DISTINCT FROM (0, 0, 0, 0, 0, 0)
        ORDER BY 1, 2, 3
        ON CONFLICT ON CONSTRAINT disposition_rollups_key DO UPDATE SET
            dispositions = r.dispositions + EXCLUDED.dispositions, contacts = r.contacts + EXCLUDED.contacts, appts_set = r.appts_set + EXCLUDED.appts_set,
            appts_held = r.appts_held + EXCLUDED.appts_held, app_pending = r.app_pending + EXCLUDED.app_pending,
            issued = r.issued + EXCLUDED.issued
    $q$, added, removed)
$fn$;

-- Agents' seconds in each kind of state (occupancy), by UTC hour, agent and the campaigns of its
-- session: a state row counts once it has ended (`ended_at`, set by the outbox's apply when the
-- session's next change arrives), for at most 12 h (reports.OPEN_STATE_CAP_SECONDS), each piece
-- in its hour. A state still open is read from the raw rows (it lasts until "now").
CREATE TABLE agent_state_rollups (
    hour               timestamptz NOT NULL,
    agent_id           text NOT NULL,
    campaign_ids       text[] NOT NULL,
    -- Seconds in any state (logging in and logged out included): a report lists an agent that has any.
    seconds            numeric NOT NULL DEFAULT 0,
    busy_seconds       numeric NOT NULL DEFAULT 0,
    available_seconds  numeric NOT NULL DEFAULT 0,
    paused_seconds     numeric NOT NULL DEFAULT 0,
    wrap_seconds       numeric NOT NULL DEFAULT 0,
    CONSTRAINT agent_state_rollups_key UNIQUE (hour, agent_id, campaign_ids)
);

CREATE INDEX agent_state_rollups_agent_idx ON agent_state_rollups (agent_id, hour);
-- The states still open, which the reports read raw over the whole period.
CREATE INDEX agent_state_changes_open_idx ON agent_state_changes (since) INCLUDE (agent_id, state, campaign_ids)
    WHERE ended_at IS NULL;

-- Which states count as busy and as available (crm_bridge.reports.BUSY_STATES and
-- AVAILABLE_STATES; the tests check they agree), and the longest a state counts.
CREATE FUNCTION report_state_kind(state text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN state IN ('reserved', 'on_call', 'wrap_up') THEN 'busy' WHEN state = 'ready' THEN 'available'
                WHEN state = 'paused' THEN 'paused' END
$$;

CREATE FUNCTION report_state_cap() RETURNS interval LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT interval '12 hours'
$$;

CREATE FUNCTION report_states_sql(source text) RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
    SELECT format($q$
        INSERT INTO agent_state_rollups AS r (hour, agent_id, campaign_ids, seconds, busy_seconds, available_seconds,
                                              paused_seconds, wrap_seconds)
        SELECT * FROM (
            SELECT h.hour, s.agent_id, s.campaign_ids, coalesce(sum(s.sign * h.seconds), 0) AS seconds,
                   coalesce(sum(s.sign * h.seconds) FILTER (WHERE report_state_kind(s.state) = 'busy'), 0) AS busy,
                   coalesce(sum(s.sign * h.seconds) FILTER (WHERE report_state_kind(s.state) = 'available'), 0)
                       AS available,
                   coalesce(sum(s.sign * h.seconds) FILTER (WHERE report_state_kind(s.state) = 'paused'), 0) AS paused,
                   coalesce(sum(s.sign * h.seconds) FILTER (WHERE s.state = 'wrap_up'), 0) AS wrap
            FROM (%s) s
            CROSS JOIN LATERAL (SELECT least(s.ended_at, s.since + report_state_cap()) AS until) e
            CROSS JOIN LATERAL (
                SELECT g AS hour, extract(epoch FROM least(e.until, g + interval '1 hour') - greatest(s.since, g)) AS seconds
                FROM generate_series(date_trunc('hour', s.since, 'UTC'), e.until, interval '1 hour') AS g) h
            WHERE s.ended_at IS NOT NULL AND h.seconds > 0
            GROUP BY 1, 2, 3) x
        WHERE (seconds, busy, available, paused, wrap) IS DISTINCT FROM (0, 0, 0, 0, 0)
        ORDER BY 1, 2, 3
        ON CONFLICT ON CONSTRAINT agent_state_rollups_key DO UPDATE SET
            seconds = r.seconds + EXCLUDED.seconds, busy_seconds = r.busy_seconds + EXCLUDED.busy_seconds,
            available_seconds = r.available_seconds + EXCLUDED.available_seconds,
            paused_seconds = r.paused_seconds + EXCLUDED.paused_seconds,
            wrap_seconds = r.wrap_seconds + EXCLUDED.wrap_seconds
    $q$, source)
$fn$;

-- One trigger function per table and operation, with the SQL above written into it (not run
-- through EXECUTE): PL/pgSQL plans it once per session, not at every statement, and a statement
-- that touched no row (the apply's linking UPDATEs often do not) costs one look at an empty
-- transition table. Transition tables are visible only to the trigger's own queries.
DO $$
DECLARE
    nothing constant text := 'SELECT * FROM dispositions WHERE false';
BEGIN
    EXECUTE format($f$CREATE FUNCTION calls_rollup_insert() RETURNS trigger LANGUAGE plpgsql AS %L$f$,
        'BEGIN IF EXISTS (SELECT 1 FROM calls_new) THEN '
        || report_calls_sql('SELECT 1 AS sign, * FROM calls_new') || '; END IF; RETURN NULL; END');
    EXECUTE format($f$CREATE FUNCTION calls_rollup_update() RETURNS trigger LANGUAGE plpgsql AS %L$f$,
        'BEGIN IF EXISTS (SELECT 1 FROM calls_new) THEN '
        || report_calls_sql('SELECT 1 AS sign, * FROM calls_new UNION ALL SELECT -1, * FROM calls_old')
        || '; END IF; RETURN NULL; END');
    EXECUTE format($f$CREATE FUNCTION calls_rollup_delete() RETURNS trigger LANGUAGE plpgsql AS %L$f$,
        'BEGIN IF EXISTS (SELECT 1 FROM calls_old) THEN '
        || report_calls_sql('SELECT -1 AS sign, * FROM calls_old') || '; END IF; RETURN NULL; END');
    EXECUTE format($f$CREATE FUNCTION dispositions_rollup_insert() RETURNS trigger LANGUAGE plpgsql AS %L$f$,
        'BEGIN IF EXISTS (SELECT 1 FROM dispositions_new) THEN '
        || report_dispositions_sql('SELECT * FROM dispositions_new', nothing) || '; END IF; RETURN NULL; END');
    -- Only an update of what the KPIs read can move a first (not the stage the apply writes).
    EXECUTE format($f$CREATE FUNCTION dispositions_rollup_update() RETURNS trigger LANGUAGE plpgsql AS %L$f$,
        'BEGIN IF EXISTS (SELECT 1 FROM dispositions_new n JOIN dispositions_old o USING (disposition_id) '
        || 'WHERE (n.call_id, n.agent_id, n.campaign_id, n.code, n.disposed_at) '
        || 'IS DISTINCT FROM (o.call_id, o.agent_id, o.campaign_id, o.code, o.disposed_at)) THEN '
        || report_dispositions_sql('SELECT * FROM dispositions_new', 'SELECT * FROM dispositions_old')
        || '; END IF; RETURN NULL; END');
    EXECUTE format($f$CREATE FUNCTION dispositions_rollup_delete() RETURNS trigger LANGUAGE plpgsql AS %L$f$,
        'BEGIN IF EXISTS (SELECT 1 FROM dispositions_old) THEN '
        || report_dispositions_sql(nothing, 'SELECT * FROM dispositions_old') || '; END IF; RETURN NULL; END');
    EXECUTE format($f$CREATE FUNCTION agent_states_rollup_insert() RETURNS trigger LANGUAGE plpgsql AS %L$f$,
        'BEGIN IF EXISTS (SELECT 1 FROM states_new) THEN '
        || report_states_sql('SELECT 1 AS sign, * FROM states_new') || '; END IF; RETURN NULL; END');
    -- The apply's update that ends a state (ended_at from NULL) is what adds it.
    EXECUTE format($f$CREATE FUNCTION agent_states_rollup_update() RETURNS trigger LANGUAGE plpgsql AS %L$f$,
        'BEGIN IF EXISTS (SELECT 1 FROM states_new) THEN '
        || report_states_sql('SELECT 1 AS sign, * FROM states_new UNION ALL SELECT -1, * FROM states_old')
        || '; END IF; RETURN NULL; END');
    EXECUTE format($f$CREATE FUNCTION agent_states_rollup_delete() RETURNS trigger LANGUAGE plpgsql AS %L$f$,
        'BEGIN IF EXISTS (SELECT 1 FROM states_old) THEN '
        || report_states_sql('SELECT -1 AS sign, * FROM states_old') || '; END IF; RETURN NULL; END');
END
$$;

-- Back-fill from the rows there are, with writers held off until the triggers are in place.
LOCK TABLE calls, dispositions, agent_state_changes IN SHARE ROW EXCLUSIVE MODE;

DO $$
BEGIN
    EXECUTE report_calls_sql('SELECT 1 AS sign, * FROM calls');
    EXECUTE report_dispositions_sql('SELECT * FROM dispositions', 'SELECT * FROM dispositions WHERE false');
    EXECUTE report_states_sql('SELECT 1 AS sign, * FROM agent_state_changes');
END
$$;

CREATE TRIGGER calls_rollup_insert AFTER INSERT ON calls REFERENCING NEW TABLE AS calls_new
    FOR EACH STATEMENT EXECUTE FUNCTION calls_rollup_insert();
CREATE TRIGGER calls_rollup_update AFTER UPDATE ON calls REFERENCING OLD TABLE AS calls_old NEW TABLE AS calls_new
    FOR EACH STATEMENT EXECUTE FUNCTION calls_rollup_update();
CREATE TRIGGER calls_rollup_delete AFTER DELETE ON calls REFERENCING OLD TABLE AS calls_old
    FOR EACH STATEMENT EXECUTE FUNCTION calls_rollup_delete();
CREATE TRIGGER dispositions_rollup_insert AFTER INSERT ON dispositions REFERENCING NEW TABLE AS dispositions_new
    FOR EACH STATEMENT EXECUTE FUNCTION dispositions_rollup_insert();
CREATE TRIGGER dispositions_rollup_update AFTER UPDATE ON dispositions
    REFERENCING OLD TABLE AS dispositions_old NEW TABLE AS dispositions_new
    FOR EACH STATEMENT EXECUTE FUNCTION dispositions_rollup_update();
CREATE TRIGGER dispositions_rollup_delete AFTER DELETE ON dispositions REFERENCING OLD TABLE AS dispositions_old
    FOR EACH STATEMENT EXECUTE FUNCTION dispositions_rollup_delete();
CREATE TRIGGER agent_states_rollup_insert AFTER INSERT ON agent_state_changes REFERENCING NEW TABLE AS states_new
    FOR EACH STATEMENT EXECUTE FUNCTION agent_states_rollup_insert();
CREATE TRIGGER agent_states_rollup_update AFTER UPDATE ON agent_state_changes
    REFERENCING OLD TABLE AS states_old NEW TABLE AS states_new
    FOR EACH STATEMENT EXECUTE FUNCTION agent_states_rollup_update();
CREATE TRIGGER agent_states_rollup_delete AFTER DELETE ON agent_state_changes REFERENCING OLD TABLE AS states_old
    FOR EACH STATEMENT EXECUTE FUNCTION agent_states_rollup_delete();
