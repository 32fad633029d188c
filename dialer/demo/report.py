"""The demo's live progress line and its final summary table (pure text formatting)."""

from __future__ import annotations

from collections.abc import Mapping

from dialer.demo.campaign import DemoSummary, Progress

OUTCOME_ORDER = ("answered", "abandoned", "machine", "busy", "no_answer", "unallocated", "congestion", "rejected",
                 "failed", "canceled")


def _blocks(blocked: Mapping[str, int]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in sorted(blocked.items(), key=lambda kv: -kv[1])) or "none"


def progress_line(p: Progress) -> str:
    """One line, rewritten about once a second."""
    minutes, seconds = divmod(int(p.elapsed), 60)
    total_m, total_s = divmod(int(p.seconds), 60)
    return (f"{minutes}:{seconds:02d}/{total_m}:{total_s:02d}  dials {p.dials}  people {p.people}"
            f"  machines {p.machines}  connected {p.connected}  abandoned {p.abandoned}  lines {p.lines}"
            f"  agents on call {p.agents_busy}/{p.agents_logged_in} (occupancy {p.occupancy:.0%})"
            f"  gate blocks: {_blocks(p.blocked)}")


def summary_text(s: DemoSummary, pg_dsn: str) -> str:
    """The final summary: a table, then where the recordings and CRM rows are."""
    rows: list[tuple[str, str]] = [
        ("campaign", f"{s.campaign_id} (predictive), dialed {s.dialing_seconds / 60:.1f} min, its last call ended at "
                     f"{s.seconds / 60:.1f} min; gate clock: {s.gate_clock}"),
        ("leads", f"{s.leads} in {len(s.leads_by_state)} states "
                  f"({', '.join(f'{k} {v}' for k, v in s.leads_by_state.items())}); {s.dnc_leads} on DNC lists"),
        ("agents", f"{len(s.agents)}: {', '.join(s.agents)}; average occupancy {s.occupancy:.0%}"),
        ("dials", str(s.dials)),
    ]
    outcomes = sorted(s.outcomes.items(), key=lambda kv: OUTCOME_ORDER.index(kv[0]) if kv[0] in OUTCOME_ORDER else 99)
    rows += [(f"  {outcome}", str(count)) for outcome, count in outcomes]
    verdict = "within" if s.abandon_rate <= s.abandon_limit else "ABOVE"
    rows += [
        ("people answered", f"{s.live_answers}: {s.connected} connected to an agent, {s.safe_harbor} heard the "
                            f"safe-harbor message, {s.opted_out_by_key} pressed 9 (opted out)"),
        ("abandon rate", f"{s.abandon_rate:.1%} ({s.abandoned}/{s.live_answers}; recount from calls rows "
                         f"{s.abandon_recount:.1%}); {verdict} the {s.abandon_limit:.0%} limit of 47 CFR 64.1200(a)(7)"),
        ("gate blocks", _blocks(s.gate_blocks)),
        ("leads never dialed", f"{s.leads_blocked} blocked by the gate ({_blocks(s.leads_blocked_by_reason)}; a lead may have several); "
                               f"{s.leads_not_reached} not reached before the end"),
        ("DNC leads dialed", str(s.dnc_leads_dialed)),
        ("people left unattended", f"{s.people_unattended} (neither connected nor given the safe-harbor message)"),
        ("dials w/o allowed decision", str(s.calls_without_allowed_decision)),
        ("recordings", f"{s.recordings} ({s.connected_recorded} of {s.connected} connected calls recorded)"),
        ("recording notices", f"{s.connected_announced} of {s.connected} connected calls announced \"This call is "
                              "recorded\" (the lead may be in an all-party-consent state)"),
        ("texts", f"{s.texts_sent} sent before the campaign ({s.texts_delivered} delivered, {s.texts_blocked} "
                  f"blocked by the gate{': ' + _blocks(s.texts_blocked_by_reason) if s.texts_blocked else ''}); "
                  f"answers: {_blocks(s.text_replies)}"),
        ("opted out by text", f"{s.opted_out_by_text}; dialed after opting out: {s.dialed_after_text_opt_out}"),
    ]
    width = max(len(label) for label, _ in rows)
    lines = ["", "Demo summary", "=" * 12]
    lines += [f"{label:<{width}}  {value}" for label, value in rows]
    lines += [
        "",
        f"Recordings (sealed, AES-256-GCM): {s.recordings_dir}",
        f"  listen: .venv/bin/dialer recording open {s.recording_example or 'FILE'} --out call.wav"
        + ("" if s.recording_example else "   (FILE: the path in recordings.storage_uri)"),
        f"CRM rows: database {s.database!r} (tables calls, messages, recordings, compliance_decisions,"
        " campaign_leads, leads, opt_outs), e.g.",
        f"  psql {pg_dsn} -c \"SELECT lead_number, outcome, amd_result, agent_id, abandoned, bridged_at"
        f" FROM calls WHERE campaign_id = '{s.campaign_id}' ORDER BY requested_at\"",
    ]
    return "\n".join(lines)
