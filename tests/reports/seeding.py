"""A seeded day of CRM activity (calls, dispositions, agent states, leads) written straight into
PostgreSQL, and an independent recount of the KPIs in plain Python from the same rows, following
docs/reports.md word by word (not the SQL of `crm_bridge.reports`)."""

from __future__ import annotations

import random
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

CONTACT_CODES = {"contacted", "callback", "not_interested", "appointment_set", "appointment_held", "sale",
                 "policy_issued", "nurture", "lost", "do_not_call"}
NO_CONTACT_CODES = ["no_answer", "left_voicemail", "wrong_number"]
FUNNEL = {"appointment_set": "appts_set", "appointment_held": "appts_held", "sale": "app_pending",
          "policy_issued": "issued"}
STAGE_OF = {"contacted": "contacted", "callback": "contacted", "appointment_set": "appt_set",
            "appointment_held": "appt_held", "sale": "app_pending", "policy_issued": "issued",
            "not_interested": "nurture", "nurture": "nurture", "lost": "lost", "do_not_call": "lost"}


@dataclass
class SeededDay:
    prefix: str
    agents: list[str]
    campaigns: list[str]
    calls: list[dict[str, Any]] = field(default_factory=list)
    dispositions: list[dict[str, Any]] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)
    leads: list[dict[str, Any]] = field(default_factory=list)


def build_day(day_start: datetime, *, seed: int = 7, calls: int = 400, prefix: str = "rpt") -> SeededDay:
    """One local day from `day_start` (UTC-aware): `calls` outbound calls spread over 9 a.m. to 6
    p.m. local plus a few just outside the day (which must not count), 4 agents in 2 campaigns."""
    rng = random.Random(seed)
    day = SeededDay(prefix, [f"{prefix}-agent-{n}" for n in range(4)], [f"{prefix}-cmp-{n}" for n in range(2)])
    lead_count = calls // 2
    for n in range(lead_count):  # numbers in an exchange (646-558) no other test uses: the database is shared
        created = day_start + timedelta(hours=rng.uniform(-30, 20))
        imported = rng.random() < 0.3
        day.leads.append({"lead_id": f"{prefix}-lead-{n}", "first_name": f"Lead{n}", "last_name": "Seed",
                          "phones": [f"+1646558{n:04d}"], "state": "NY", "pipeline_stage": "new_lead",
                          "created_at": created, "import_id": "imp-1" if imported else None,
                          "owner_agent_id": rng.choice(day.agents)})
    stage = {lead["lead_id"]: "new_lead" for lead in day.leads}
    order = ["new_lead", "contacted", "appt_set", "appt_held", "app_pending", "issued"]
    for n in range(calls):
        lead = rng.choice(day.leads)
        # Most inside the day; some in the hour before it and the hour after it.
        offset = rng.choice([rng.uniform(9, 18)] * 18 + [rng.uniform(-1, 0), rng.uniform(24, 25)])
        requested = day_start + timedelta(hours=offset)
        agent = rng.choice(day.agents)
        campaign = rng.choice(day.campaigns)
        answered = rng.random() < 0.6
        person = answered and rng.random() < 0.7
        amd = ("HUMAN" if rng.random() < 0.8 else "NOTSURE") if person else ("MACHINE" if answered else None)
        abandoned = person and rng.random() < 0.04
        bridged = person and not abandoned
        talk = round(rng.uniform(10, 400), 3) if bridged else None
        ended = requested + timedelta(seconds=(talk or 0) + rng.uniform(5, 30))
        inbound = rng.random() < 0.05
        call = {"call_id": f"{prefix}-call-{n}", "version": 1, "direction": "inbound" if inbound else "outbound",
                "lead_id": lead["lead_id"], "agent_id": agent if (bridged or rng.random() < 0.3) else None,
                "campaign_id": campaign, "requested_at": requested,
                "lead_answered_at": requested + timedelta(seconds=5) if answered else None,
                "bridged_at": requested + timedelta(seconds=6) if bridged else None, "ended_at": ended,
                "amd_result": amd, "abandoned": abandoned, "talk_seconds": talk,
                "outcome": "answered" if answered else "no_answer"}
        day.calls.append(call)
        if bridged:
            code = rng.choice([*CONTACT_CODES, "appointment_set", "appointment_set", "sale", *NO_CONTACT_CODES])
            disposed = ended + timedelta(seconds=rng.choice([rng.uniform(1, 120), rng.uniform(1000, 2000)]))
            before = stage[lead["lead_id"]]
            target = STAGE_OF.get(code)
            after = before
            if target is not None and before != "issued":
                if target in ("lost", "nurture") or before in ("lost", "nurture") or (
                        order.index(target) > order.index(before)):
                    after = target
            stage[lead["lead_id"]] = after
            day.dispositions.append({
                "disposition_id": f"{prefix}-disp-{n}", "call_id": call["call_id"], "lead_id": lead["lead_id"],
                "agent_id": agent, "campaign_id": campaign, "code": code, "disposed_at": disposed,
                "stage_before": before, "stage_after": after})
            if rng.random() < 0.05:  # a correction: the same call disposed again
                day.dispositions.append({**day.dispositions[-1], "disposition_id": f"{prefix}-disp-{n}-again",
                                         "disposed_at": disposed + timedelta(seconds=30)})
    for lead in day.leads:
        lead["pipeline_stage"] = stage[lead["lead_id"]]
    for index, agent in enumerate(day.agents):
        at = day_start + timedelta(hours=8, minutes=index)
        version = 0
        states = ["ready", "reserved", "on_call", "wrap_up", "ready", "paused", "ready", "on_call", "wrap_up"]
        while at < day_start + timedelta(hours=19):
            for state in states:
                version += 1
                day.states.append({"change_id": f"{agent}:{version}", "agent_id": agent, "state": state,
                                   "since": at, "version": version, "session_id": f"{agent}-session",
                                   "campaign_ids": day.campaigns[: 1 + index % 2]})
                at += timedelta(seconds=rng.uniform(20, 600))
        version += 1
        day.states.append({"change_id": f"{agent}:{version}", "agent_id": agent, "state": "logged_out", "since": at,
                           "version": version, "session_id": f"{agent}-session",
                           "campaign_ids": day.campaigns[: 1 + index % 2]})
    # As the outbox's apply leaves them: each state ended by the session's next one.
    for state, following in zip(day.states, [*day.states[1:], None], strict=True):
        same = following is not None and following["session_id"] == state["session_id"]
        state["ended_at"] = following["since"] if same and following is not None else None
    return day


async def write_day(conn: asyncpg.Connection, day: SeededDay) -> None:
    for table, rows in (("leads", day.leads), ("calls", day.calls), ("dispositions", day.dispositions),
                        ("agent_state_changes", day.states)):
        columns = list(rows[0])
        await conn.copy_records_to_table(table, records=[tuple(row[name] for name in columns) for row in rows],
                                         columns=columns)


def recount(day: SeededDay, start: datetime, end: datetime, group: str, now: datetime) -> dict[str, dict[str, Any]]:
    """The KPIs per key ("agency", an agent or a campaign), recounted from the seeded rows."""
    out: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(float))

    def keys(agent: str | None, campaign: str | None) -> list[str]:
        if group == "agency":
            return ["agency"]
        return [(agent if group == "agent" else campaign) or ""]

    for call in day.calls:
        if not start <= call["requested_at"] < end:
            continue
        for key in keys(call["agent_id"], call["campaign_id"]):
            row = out[key]
            outbound = call["direction"] == "outbound"
            person = call["amd_result"] in ("HUMAN", "NOTSURE")
            row["dials"] += outbound
            row["answered"] += outbound and call["lead_answered_at"] is not None
            row["people"] += outbound and person
            row["connected"] += call["bridged_at"] is not None
            row["abandoned"] += call["abandoned"] and person
            row["inbound"] += not outbound
            if call["bridged_at"] is not None and call["agent_id"] is not None:
                row["handled"] += 1
                row["talk_seconds"] += call["talk_seconds"] or 0
    # Each call counts once per KPI: at its earliest disposition with that KPI, for that
    # disposition's agent and campaign (a correction later counts nothing).
    firsts: dict[tuple[str, str], dict[str, Any]] = {}
    for disposition in sorted(day.dispositions, key=lambda row: (row["disposed_at"], row["disposition_id"])):
        if start <= disposition["disposed_at"] < end:
            for key in keys(disposition["agent_id"], disposition["campaign_id"]):
                out[key]  # a disposition in the period lists its key, counting or not
        code = disposition["code"]
        names = (["contacts"] if code in CONTACT_CODES else []) + ([FUNNEL[code]] if code in FUNNEL else [])
        for name in names:
            firsts.setdefault((disposition["call_id"] or disposition["disposition_id"], name), disposition)
    for (_call, name), disposition in firsts.items():
        if start <= disposition["disposed_at"] < end:
            for key in keys(disposition["agent_id"], disposition["campaign_id"]):
                out[key][name] += 1
    by_agent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for state in day.states:
        by_agent[state["agent_id"]].append(state)
    for rows in by_agent.values():
        rows.sort(key=lambda row: (row["since"], row["version"]))
        for index, state in enumerate(rows):
            until = rows[index + 1]["since"] if index + 1 < len(rows) else now
            until = min(until, state["since"] + timedelta(hours=12))
            seconds = (min(until, end) - max(state["since"], start)).total_seconds()
            if seconds <= 0:
                continue
            names = {"ready": "available_seconds", "paused": "paused_seconds", "reserved": "busy_seconds",
                     "on_call": "busy_seconds", "wrap_up": "busy_seconds"}
            if state["state"] not in names:
                continue
            targets = (["agency"] if group == "agency" else [state["agent_id"]] if group == "agent"
                       else state["campaign_ids"])
            for key in targets:
                out[key][names[state["state"]]] += seconds
                if state["state"] == "wrap_up":
                    out[key]["wrap_seconds"] += seconds
    waits: dict[str, list[float]] = defaultdict(list)
    for lead in day.leads:
        if not start <= lead["created_at"] < end or lead["import_id"] is not None:
            continue
        dials = sorted((call for call in day.calls if call["lead_id"] == lead["lead_id"]
                        and call["direction"] == "outbound" and call["requested_at"] >= lead["created_at"]),
                       key=lambda call: call["requested_at"])
        first = dials[0] if dials else None
        for key in keys(first["agent_id"] if first else None, first["campaign_id"] if first else None):
            out[key]["new_leads"] += 1
            if first is not None:
                out[key]["leads_dialed"] += 1
                waits[key].append((first["requested_at"] - lead["created_at"]).total_seconds())
    for key, values in waits.items():
        out[key]["speed_to_lead_median_seconds"] = statistics.median(values)
    return {key: dict(values) for key, values in out.items()}
