"""What the rows of a packet show, worked out once for the report and the JSON alike. Pure.

- the timeline: every contact attempt (placed, or blocked by the gate), received call and text,
  consent and opt-out, in order, in UTC and in the lead's local time(s);
- per call: the gate's decision (reasons, citations, data versions), caller ID, agent, dial
  mode, AMD, greeting end and bridge time against the 2-second rule, the safe-harbor message
  and key presses, recordings, dispositions, monitoring and who listened to the recording;
- per opt-out: whether any contact followed it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from compliance_rules.location import locate_zip
from compliance_rules.numbers import parse_number
from compliance_rules.telemarketing import CONNECT_LIMIT_SECONDS, LIVE_ANSWER_AMD_RESULTS
from crm_bridge.audit_chain import CHAINS
from evidence.model import EvidenceData

Row = dict[str, Any]

# Where an allowed decision's checks come from (the rules it passed), for a reader with no docs.
ALLOWED_MEANS = (
    ("calling window", "47 CFR 64.1200(c)(1); 16 CFR 310.4(c): 8 a.m. to 9 p.m. in the called person's local time "
     "(and each state's own window)"),
    ("National Do Not Call Registry", "47 CFR 64.1200(c)(2); 16 CFR 310.4(b)(1)(iii)(B); registry copy no more than "
     "31 days old, 16 CFR 310.4(b)(3)(iv)"),
    ("company do-not-call list and opt-outs", "47 CFR 64.1200(d)(3); 47 CFR 64.1200(a)(10)-(12)"),
    ("state do-not-call lists, holidays and call caps", "the state rules in force for every state the lead may be in"),
    ("consent", "47 CFR 64.1200(a)(2)-(3) (prior express written consent) where the campaign requires it; "
     "42 CFR 422.2264 (Medicare permission to contact)"),
)
SAFE_HARBOR_CITATION = ("47 CFR 64.1200(a)(7)(i); 16 CFR 310.4(b)(4)(iii): within 2 seconds of the greeting, a "
                        "recorded message with the seller's name, a number to call, and an automated opt-out")
OPT_OUT_CITATION = "47 CFR 64.1200(d)(3), (a)(10)-(12): opt-outs honored on every channel"


def parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def utc_text(value: str | None) -> str:
    moment = parse_time(value)
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def local_text(value: str | None, zones: Sequence[str]) -> list[str]:
    """`value` in each zone, e.g. "2026-11-24 09:30:05 EST (America/New_York)"."""
    moment = parse_time(value)
    if moment is None:
        return []
    found = []
    for zone in zones:
        try:
            local = moment.astimezone(ZoneInfo(zone))
        except (ZoneInfoNotFoundError, ValueError):
            continue
        found.append(f"{local.strftime('%Y-%m-%d %H:%M:%S %Z')} ({zone})")
    return found


def seconds_between(start: str | None, end: str | None) -> float | None:
    a, b = parse_time(start), parse_time(end)
    return None if a is None or b is None else round((b - a).total_seconds(), 3)


def lead_zones(data: EvidenceData) -> list[str]:
    """Every zone the person may be in: the gate's (from its decisions), else the number's and
    the ZIP code's."""
    zones: list[str] = []
    for decision in data.decisions:
        zones += [zone for zone in decision.get("timezones") or [] if isinstance(zone, str)]
    if not zones:
        for phone in data.phones:
            zones += list(parse_number(phone).zones)
        for lead in data.leads:
            if lead.get("zip"):
                location = locate_zip(str(lead["zip"]))
                if location is not None and location.zone:
                    zones.append(location.zone)
    return list(dict.fromkeys(zones))


def _chain_refs(data: EvidenceData, chain: str, key: object) -> list[Row]:
    return [{"chain": entry.chain, "seq": entry.seq, "entry_hash": entry.entry_hash, "applied_at": entry.applied_at}
            for entry in data.entries if entry.chain == chain and entry.record_key == str(key)]


def _decision(data: EvidenceData, decision: Row | None) -> Row | None:
    if decision is None:
        return None
    return {
        "decision_id": decision["decision_id"], "decided_at": decision["decided_at"],
        "decided_at_utc": utc_text(decision["decided_at"]), "allowed": decision["allowed"],
        "purpose": decision["purpose"], "phone": decision["phone"], "reasons": decision.get("reasons") or [],
        "notices": decision.get("notices") or [], "timezones": decision.get("timezones") or [],
        "local_times": decision.get("local_times") or [], "data_versions": decision.get("data_versions") or {},
        "chain": _chain_refs(data, "compliance_decision", decision["decision_id"]),
    }


def two_second_rule(call: Row) -> Row:
    """The 2-second rule's evidence for one call, and a verdict in words."""
    greeting_end, bridged = call.get("greeting_ended_at"), call.get("bridged_at")
    delay = seconds_between(greeting_end, bridged)
    amd = call.get("amd_result")
    if call.get("direction") != "outbound":
        verdict, text = "not_applicable", "a call the person made: the rule is about calls the dialer places"
    elif amd not in LIVE_ANSWER_AMD_RESULTS:
        verdict = "not_applicable"
        text = ("answered by a machine (AMD: MACHINE): not a live person, the rule does not apply" if amd == "MACHINE"
                else "not answered by a person: the rule does not apply")
    elif delay is not None and delay <= CONNECT_LIMIT_SECONDS and not call.get("abandoned"):
        verdict = "connected_in_time"
        text = f"connected to an agent {delay:.2f} s after the greeting ended (limit {CONNECT_LIMIT_SECONDS:.0f} s)"
    elif call.get("safe_harbor_played"):
        verdict = "safe_harbor"
        text = ("no agent was free within 2 s of the greeting: the safe-harbor message played and the call is "
                "counted as abandoned")
    elif delay is not None:
        verdict = "late"
        text = f"connected {delay:.2f} s after the greeting ended: later than 2 s, counted as abandoned"
    else:
        verdict = "abandoned" if call.get("abandoned") else "not_connected"
        text = "the person was not connected to an agent" + (" (counted as abandoned)" if call.get("abandoned") else "")
    return {"verdict": verdict, "text": text, "greeting_ended_at": greeting_end, "bridged_at": bridged,
            "delay_seconds": delay, "limit_seconds": CONNECT_LIMIT_SECONDS, "citation": SAFE_HARBOR_CITATION}


def _safe_harbor(call: Row, campaign: Row | None, opt_outs: Iterable[Row]) -> Row:
    presses = [{"key": "9", "at": row["created_at"], "at_utc": utc_text(row["created_at"]),
                "opt_out_id": row["opt_out_id"]}
               for row in opt_outs if row.get("call_id") == call["call_id"] and row.get("source") == "safe_harbor_key"]
    message = None
    if campaign is not None:
        message = (f"seller: {campaign.get('seller_name') or '(not set)'}; number to call to opt out: "
                   f"{campaign.get('dnc_callback_number') or '(not set)'}; press 9 to opt out automatically")
    return {"played": bool(call.get("safe_harbor_played")), "message": message, "key_presses": presses}


def _contact(data: EvidenceData, call: Row, zones: Sequence[str], files: Mapping[str, Row]) -> Row:
    decisions = {row["decision_id"]: row for row in data.decisions}
    campaign = data.campaigns.get(call.get("campaign_id") or "")
    agent = data.agents.get(call.get("agent_id") or "")
    decision = decisions.get(call.get("compliance_decision_id") or "")
    call_zones = list((decision or {}).get("timezones") or zones)
    recordings = [row for row in data.recordings if row.get("call_id") == call["call_id"]]
    recording_ids = {row["recording_id"] for row in recordings}
    return {
        "kind": "call", "call_id": call["call_id"], "direction": call["direction"],
        "at": call["requested_at"], "at_utc": utc_text(call["requested_at"]),
        "local": local_text(call["requested_at"], call_zones),
        "phone": call.get("lead_number"), "caller_id": call.get("caller_id"),
        "agent": None if not call.get("agent_id") else {"agent_id": call["agent_id"],
                                                        "name": (agent or {}).get("name")},
        "campaign": None if not call.get("campaign_id") else {
            "campaign_id": call["campaign_id"], "name": (campaign or {}).get("name"),
            "dial_mode": (campaign or {}).get("dial_mode"), "purpose": (campaign or {}).get("purpose")},
        "decision": _decision(data, decision),
        "outcome": call.get("outcome"), "abandoned": bool(call.get("abandoned")),
        "amd": {"result": call.get("amd_result"), "cause": call.get("amd_cause")},
        "times": {name: call.get(name) for name in ("requested_at", "agent_answered_at", "lead_ringing_at",
                                                    "lead_answered_at", "greeting_ended_at", "bridged_at", "ended_at")},
        "times_text": [(label, utc_text(call.get(name)) or "-") for label, name in (
            ("dialed", "requested_at"), ("answered", "lead_answered_at"), ("greeting ended", "greeting_ended_at"),
            ("bridged to the agent", "bridged_at"), ("ended", "ended_at"))],
        "hangup": {"cause": call.get("hangup_cause"), "text": call.get("hangup_cause_text"),
                   "sip_code": call.get("sip_code")},
        "durations": {name: call.get(name) for name in ("ring_seconds", "talk_seconds", "total_seconds")},
        "two_second_rule": two_second_rule(call),
        "safe_harbor": _safe_harbor(call, campaign, data.opt_outs),
        "recordings": [{**files.get(row["recording_id"], {}), "recording_id": row["recording_id"],
                        "sha256": str(row["sha256"]).strip(), "duration_seconds": row.get("duration_seconds"),
                        "format": row.get("format"), "recorded_at": row.get("recorded_at"),
                        "legal_hold": row.get("legal_hold"), "legal_hold_by": row.get("legal_hold_by"),
                        "legal_hold_reason": row.get("legal_hold_reason"), "purged_at": row.get("purged_at"),
                        "events": [event for event in data.recording_events
                                   if event.get("recording_id") == row["recording_id"]],
                        "chain": _chain_refs(data, "recording", row["recording_id"])} for row in recordings],
        "dispositions": [{**row, "chain": _chain_refs(data, "disposition", row["disposition_id"])}
                         for row in data.dispositions if row.get("call_id") == call["call_id"]],
        "monitor_sessions": [{**row, "chain": _chain_refs(data, "monitor_session", row["monitor_id"])}
                             for row in data.monitor_sessions if row.get("call_id") == call["call_id"]],
        "recording_accesses": [{**row, "chain": _chain_refs(data, "recording_access", row["access_id"])}
                               for row in data.recording_accesses if row.get("recording_id") in recording_ids],
        "chain": _chain_refs(data, "call", call["call_id"]),
    }


def _message_time(row: Row) -> str | None:
    for name in ("sent_at", "received_at", "created_at"):
        if isinstance(row.get(name), str):
            return str(row[name])
    return None


def _text(data: EvidenceData, row: Row, zones: Sequence[str]) -> Row:
    decisions = {decision["decision_id"]: decision for decision in data.decisions}
    decision = decisions.get(row.get("compliance_decision_id") or "")
    at = _message_time(row)
    return {
        "kind": "text", "message_id": row["message_id"], "direction": row.get("direction"),
        "text_kind": row.get("kind"), "at": at, "at_utc": utc_text(at),
        "local": local_text(at, list((decision or {}).get("timezones") or zones)),
        "from_number": row.get("from_number"), "to_number": row.get("to_number"), "body": row.get("body"),
        "status": row.get("status"), "status_detail": row.get("status_detail"), "sent_at": row.get("sent_at"),
        "delivery_status": row.get("delivery_status"), "delivered_at": row.get("delivered_at"),
        "transport": row.get("transport"), "agent_id": row.get("agent_id"), "campaign_id": row.get("campaign_id"),
        "decision": _decision(data, decision),
        "receipts": [receipt for receipt in data.message_receipts if receipt.get("message_id") == row["message_id"]
                     or (row.get("provider_message_id")
                         and receipt.get("provider_message_id") == row.get("provider_message_id"))],
        "chain": _chain_refs(data, "message", row["message_id"]),
    }


def _sent(row: Row) -> bool:
    """A text that went out to the person (not one the gate blocked or that never left)."""
    return row.get("direction") == "outbound" and bool(row.get("sent_at"))


def _opt_out_proofs(data: EvidenceData, zones: Sequence[str]) -> list[Row]:
    proofs = []
    for opt_out in data.opt_outs:
        at = parse_time(opt_out["created_at"])
        assert at is not None
        phone = opt_out["phone"]
        # A later START (texting's opt-in) is new consent: contact after it is not a breach.
        opt_ins = sorted(time for row in data.opt_ins if row.get("phone") == phone
                         and (time := parse_time(row.get("created_at"))) is not None and time > at)
        until = opt_ins[0] if opt_ins else None

        def within(value: str | None, start: datetime = at, end: datetime | None = until) -> bool:
            when = parse_time(value)
            return when is not None and when > start and (end is None or when < end)

        calls = [call for call in data.calls if call.get("lead_number") == phone and within(call["requested_at"])]
        placed = [call["call_id"] for call in calls if call["direction"] == "outbound"]
        received = [call["call_id"] for call in calls if call["direction"] == "inbound"]
        decisions = [row for row in data.decisions if row["phone"] == phone and within(row["decided_at"])]
        allowed = [row["decision_id"] for row in decisions if row["allowed"]]
        texts = [row["message_id"] for row in data.messages or []
                 if row.get("to_number") == phone and _sent(row) and within(row.get("sent_at"))]
        followed = bool(placed or allowed or texts)
        end_text = (f"until the person texted START at {utc_text(until.isoformat())}" if until is not None
                    else f"up to {utc_text(data.collected_at)}")
        proofs.append({
            **opt_out, "at_utc": utc_text(opt_out["created_at"]), "local": local_text(opt_out["created_at"], zones),
            "chain": _chain_refs(data, "opt_out", opt_out["opt_out_id"]),
            "until": None if until is None else until.isoformat(),
            "after": {"calls_placed": placed, "calls_received": received, "texts_sent": texts,
                      "gate_decisions": len(decisions), "gate_allowed": allowed,
                      "gate_blocked": len(decisions) - len(allowed)},
            "no_contact_followed": not followed,
            "statement": (
                f"After this opt-out, {end_text}: no call was placed and no text was sent to {phone}; the gate was "
                f"asked {len(decisions)} time(s) and blocked every one."
                if not followed else
                f"After this opt-out, {end_text}: {len(placed)} call(s) were placed, {len(texts)} text(s) sent and "
                f"{len(allowed)} gate decision(s) allowed a contact to {phone}: see the timeline."),
        })
    return proofs


def findings(data: EvidenceData, files: Mapping[str, Row] | None = None) -> Row:
    """Everything the report shows, as plain JSON values. `files`: recording id -> the packet's
    file for it (`{"file", "transcript_file", "audio_sha256", "audio_verified"}`)."""
    files = files or {}
    zones = lead_zones(data)
    contacts = [_contact(data, call, zones, files) for call in data.calls]
    texts = [_text(data, row, zones) for row in data.messages or []]
    linked = {row.get("compliance_decision_id") for row in (*data.calls, *(data.messages or []))}
    events: list[Row] = []
    for contact in contacts:
        direction = "Call placed" if contact["direction"] == "outbound" else "Call received"
        summary = f"{contact['outcome'] or 'in progress'}; {contact['two_second_rule']['text']}"
        events.append({"at": contact["at"], "event": f"{direction} ({contact['call_id']})", "summary": summary,
                       "anchor": f"call-{contact['call_id']}"})
    for decision in data.decisions:
        if decision["decision_id"] in linked:
            continue
        codes = ", ".join(reason.get("code", "") for reason in decision.get("reasons") or [])
        events.append({"at": decision["decided_at"],
                       "event": "Gate check: allowed (a pre-check: no call was placed with this decision)"
                       if decision["allowed"]
                       else "Contact blocked by the compliance gate",
                       "summary": codes or decision["purpose"], "anchor": f"decision-{decision['decision_id']}"})
    for text in texts:
        sent = ("Text received" if text["direction"] != "outbound" else "Text sent" if text["sent_at"]
                else "Text not sent")
        events.append({"at": text["at"], "event": f"{sent} ({text['text_kind']})",
                       "summary": f"{text['status']}{'; ' + text['delivery_status'] if text['delivery_status'] else ''}: "
                                  f"{(text['body'] or '')[:80]}", "anchor": f"text-{text['message_id']}"})
    for opt_in in data.opt_ins:
        events.append({"at": opt_in["created_at"], "event": f"Opt-in ({opt_in['source']})",
                       "summary": f"{opt_in['phone']} asked to receive messages again", "anchor": ""})
    for consent in data.consents:
        events.append({"at": consent["obtained_at"], "event": f"Consent obtained ({consent['kind']})",
                       "summary": f"source {consent['source']}; evidence {consent.get('evidence_ref') or 'none'}",
                       "anchor": f"consent-{consent['consent_id']}"})
        if consent.get("revoked_at"):
            events.append({"at": consent["revoked_at"], "event": f"Consent revoked ({consent['kind']})", "summary": "",
                           "anchor": f"consent-{consent['consent_id']}"})
    for opt_out in data.opt_outs:
        events.append({"at": opt_out["created_at"], "event": f"Opt-out ({opt_out['source']})",
                       "summary": f"{opt_out['phone']} put on the company do-not-call list",
                       "anchor": f"optout-{opt_out['opt_out_id']}"})
    for disposition in data.dispositions:
        events.append({"at": disposition["disposed_at"], "event": f"Disposition {disposition['code']}",
                       "summary": f"call {disposition.get('call_id')}", "anchor": f"call-{disposition.get('call_id')}"})
    events = [event for event in events if event["at"]]
    events.sort(key=lambda event: (parse_time(event["at"]) or datetime.min, event["event"]))
    for event in events:
        event["at_utc"] = utc_text(event["at"])
        event["local"] = local_text(event["at"], zones)
    proofs = _opt_out_proofs(data, zones)
    placed = [c for c in contacts if c["direction"] == "outbound"]
    rule = [c["two_second_rule"]["verdict"] for c in placed]
    return {
        "subject": data.subject.to_json(), "subject_text": data.subject.describe(),
        "collected_at": data.collected_at, "collected_at_utc": utc_text(data.collected_at), "zones": zones,
        "leads": data.leads, "phones": data.phones,
        "summary": {
            "calls_placed": len(placed), "calls_received": len(contacts) - len(placed),
            "connected": sum(1 for c in contacts if c["times"]["bridged_at"]),
            "abandoned": sum(1 for c in contacts if c["abandoned"]),
            "safe_harbor": sum(1 for c in contacts if c["safe_harbor"]["played"]),
            "two_second_rule_kept": all(v in ("connected_in_time", "safe_harbor", "not_applicable") for v in rule),
            "texts": None if data.messages is None else len(data.messages),
            "texts_sent": sum(1 for row in data.messages or [] if _sent(row)),
            "blocked_attempts": sum(1 for d in data.decisions if not d["allowed"]),
            "consents": len(data.consents), "opt_outs": len(data.opt_outs),
            "no_contact_after_opt_out": all(proof["no_contact_followed"] for proof in proofs),
            "recordings": len(data.recordings),
            "recordings_verified": sum(1 for f in files.values() if f.get("audio_verified")),
            "monitor_sessions": len(data.monitor_sessions), "recording_accesses": len(data.recording_accesses),
        },
        "timeline": events,
        "contacts": contacts,
        "decisions": [{**(_decision(data, decision) or {}),
                       "call_id": next((c["call_id"] for c in data.calls
                                        if c.get("compliance_decision_id") == decision["decision_id"]), None),
                       "message_id": next((m["message_id"] for m in data.messages or []
                                           if m.get("compliance_decision_id") == decision["decision_id"]), None),
                       "channel": decision.get("channel", "voice")}
                      for decision in data.decisions],
        "allowed_means": [{"check": check, "citation": citation} for check, citation in ALLOWED_MEANS],
        "consents": [{**row, "obtained_at_utc": utc_text(row["obtained_at"]),
                      "chain": _chain_refs(data, "consent", row["consent_id"])} for row in data.consents],
        "opt_outs": proofs,
        "opt_out_citation": OPT_OUT_CITATION,
        "messages": data.messages,
        "texts": texts,
        "opt_ins": data.opt_ins,
        "chains": {name: len([e for e in data.entries if e.chain == name]) for name in CHAINS},
        "checkpoint": None if data.checkpoint is None else data.checkpoint.to_json(),
    }
