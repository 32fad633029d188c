"""The packet's pure parts: whom it is about, and what the rows show (the 2-second rule, the
safe harbor and its key press, the proof that no contact followed an opt-out)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from evidence.findings import findings, local_text, two_second_rule
from evidence.model import EvidenceData
from evidence.subject import SubjectError, subject_from

pytestmark = pytest.mark.timeout(30)


def test_a_packet_is_about_exactly_one_lead_number_or_call() -> None:
    assert subject_from(phone="(212) 555-0142").phone == "+12125550142"
    with pytest.raises(SubjectError, match="exactly one") as error:
        subject_from(lead_id="l1", call_id="c1")
    assert error.value.field == "call_id"
    with pytest.raises(SubjectError):
        subject_from()
    with pytest.raises(SubjectError, match="not a US phone number"):
        subject_from(phone="12")
    with pytest.raises(SubjectError, match="ends before it starts"):
        subject_from(lead_id="l1", start=datetime(2026, 2, 1, tzinfo=UTC), end=datetime(2026, 1, 1, tzinfo=UTC))


def _call(**fields: object) -> dict[str, object]:
    call: dict[str, object] = {
        "call_id": "c1", "direction": "outbound", "requested_at": "2026-11-24T14:30:00Z", "lead_number": "+12125550142",
        "amd_result": "HUMAN", "greeting_ended_at": "2026-11-24T14:30:10.000000Z", "bridged_at": None,
        "safe_harbor_played": False, "abandoned": False}
    call.update(fields)
    return call


def test_the_two_second_rule_is_judged_from_the_greeting_end_and_the_bridge() -> None:
    assert two_second_rule(_call(bridged_at="2026-11-24T14:30:10.840000Z"))["verdict"] == "connected_in_time"
    assert "0.84 s" in two_second_rule(_call(bridged_at="2026-11-24T14:30:10.840000Z"))["text"]
    assert two_second_rule(_call(safe_harbor_played=True, abandoned=True))["verdict"] == "safe_harbor"
    assert two_second_rule(_call(bridged_at="2026-11-24T14:30:12.500000Z", abandoned=True))["verdict"] == "late"
    assert two_second_rule(_call(amd_result="MACHINE"))["verdict"] == "not_applicable"
    assert two_second_rule(_call(direction="inbound"))["verdict"] == "not_applicable"


def test_local_times_are_given_in_every_zone_the_person_may_be_in() -> None:
    assert local_text("2026-11-24T14:30:00Z", ["America/New_York", "America/Chicago"]) == [
        "2026-11-24 09:30:00 EST (America/New_York)", "2026-11-24 08:30:00 CST (America/Chicago)"]


def test_a_contact_after_an_opt_out_is_called_out() -> None:
    data = EvidenceData(subject_from(phone="+12125550142"), phones=["+12125550142"],
                        calls=[_call(), _call(call_id="c2", requested_at="2026-11-25T15:00:00Z")],
                        opt_outs=[{"opt_out_id": "o1", "phone": "+12125550142", "source": "safe_harbor_key",
                                   "call_id": "c1", "created_at": "2026-11-24T14:30:20Z"}],
                        collected_at="2026-11-26T00:00:00Z")
    found = findings(data)
    (proof,) = found["opt_outs"]
    assert not proof["no_contact_followed"] and proof["after"]["calls_placed"] == ["c2"]
    assert not found["summary"]["no_contact_after_opt_out"]
    # The key press is shown on the call it was made in.
    assert found["contacts"][0]["safe_harbor"]["key_presses"][0]["key"] == "9"
    data.calls = data.calls[:1]
    assert findings(data)["opt_outs"][0]["no_contact_followed"]
