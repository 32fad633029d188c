"""Record validation: bad records are refused with the field named; good ones normalized."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from crm_bridge.kinds import RecordKind
from crm_bridge.records import InvalidRecord, validate
from tests.crm import factories


def _refused(kind: str, record: Any) -> InvalidRecord:
    with pytest.raises(InvalidRecord) as caught:
        validate(kind, record)
    return caught.value


def test_call_without_id_is_refused() -> None:
    record = factories.call()
    del record["call_id"]
    error = _refused("call", record)
    assert (error.kind, error.field, error.problem) == ("call", "call_id", "is required")
    assert str(error) == "call.call_id: is required"


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("call_id", "", "must be a non-empty string"),
        ("version", -1, "must be between 0"),
        ("version", True, "must be a whole number"),
        ("direction", "sideways", "must be one of outbound, inbound"),
        ("lead_number", "4045550123", "must be an E.164 number"),
        ("requested_at", datetime(2026, 1, 1), "must include a UTC offset"),
        ("requested_at", "yesterday", "must be an ISO-8601 time"),
        ("sip_code", 42, "must be between 100 and 699"),
        ("talk_seconds", -3, "must be between 0.0"),
        ("outcome", "fine", "must be one of answered"),
        ("compliance_decision_id", "not-a-uuid", "must be a UUID"),
        ("abandoned", None, "must not be null"),
        ("ended_at", "2026-11-23T14:00:00+00:00", "is earlier than requested_at"),
    ],
)
def test_call_field_problems_are_named(field: str, value: object, problem: str) -> None:
    record = factories.call()
    record[field] = value
    error = _refused("call", record)
    assert error.field == field
    assert problem in error.problem


def test_unknown_field_and_unknown_kind() -> None:
    assert "unknown field(s) colour" in _refused("call", factories.call(colour="red")).problem
    assert "unknown record kind" in str(_refused("sms", {}))


def test_call_snapshot_is_normalized_and_filled() -> None:
    normal = validate("call", factories.call(call_id="c1", requested_at="2026-11-23T10:00:00-05:00"))
    assert normal["requested_at"] == "2026-11-23T15:00:00+00:00"
    assert normal["ended_at"] is None
    assert normal["abandoned"] is False
    assert set(normal) == set(validate("call", factories.ended_call("c1")))


def test_compliance_decision_from_the_gate_is_accepted_as_is() -> None:
    record = factories.decision()
    normal = validate(RecordKind.COMPLIANCE_DECISION, record)
    assert normal["reasons"] == record["reasons"]
    assert normal["data_versions"] == {"dnc": "2026-11-20", "rules": "3"}
    # The gate also audits numbers it could not parse, and decisions without a lead.
    assert validate("compliance_decision", factories.decision(phone="12ab", lead_id=None))["lead_id"] is None
    assert _refused("compliance_decision", factories.decision(reasons=[{"message": "x"}])).field == "reasons"


def test_callback_disposition_needs_a_time() -> None:
    assert _refused("disposition", factories.disposition("callback")).field == "callback_at"
    assert _refused("disposition", factories.disposition("sold")).field == "code"


def test_lead_upsert_is_a_patch_and_checks_consents() -> None:
    assert validate("lead_upsert", {"lead_id": "l1", "email": None}) == {"lead_id": "l1", "email": None}
    bad = factories.lead(consents=[{"consent_id": "c", "kind": "pewc", "source": "web"}])
    error = _refused("lead_upsert", bad)
    assert error.field == "consents"
    assert "item 0 obtained_at: is required" in error.problem
    assert _refused("lead_upsert", factories.lead(zip="3030")).field == "zip"
    assert _refused("lead_upsert", factories.lead(phones=["+14045550123", "555"])).problem.startswith("item 1")


def test_campaign_window_and_abandon_rate() -> None:
    assert _refused("campaign_upsert", factories.campaign(window_end=None)).field == "window_end"
    assert _refused("campaign_upsert", factories.campaign(window_start="21:00")).field == "window_end"
    assert _refused("campaign_upsert", factories.campaign(max_abandon_rate=0.05)).field == "max_abandon_rate"
    assert validate("campaign_upsert", factories.campaign())["window_start"] == "09:00:00"


def test_recording_checksum_is_lowercased_and_checked() -> None:
    assert validate("recording", factories.recording("c1", sha256="A" * 64))["sha256"] == "a" * 64
    assert _refused("recording", factories.recording("c1", sha256="xyz")).field == "sha256"


async def test_memory_sink_is_a_record_sink_and_validates() -> None:
    from crm_bridge.outbox import RecordSink
    from tests.support.crm_sink import MemorySink

    sink: RecordSink = MemorySink()
    assert await sink.put("opt_out", factories.opt_out()) == 1
    with pytest.raises(InvalidRecord):
        await sink.put_many([("opt_out", factories.opt_out()), ("call", {})])
    assert isinstance(sink, MemorySink) and len(sink.of_kind("opt_out")) == 1
