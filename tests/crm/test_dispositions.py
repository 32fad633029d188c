"""Disposition -> pipeline stage rules, checked over every (stage, disposition) pair."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from crm_bridge.dispositions import (
    FORWARD_LINE,
    OFF_LINE,
    DispositionCode,
    DispositionError,
    PipelineStage,
    decide,
    next_stage,
    parse_code,
    wrap_up_records,
)
from crm_bridge.records import validate

S = PipelineStage
D = DispositionCode
WHEN = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
ALL_PAIRS = list(itertools.product(PipelineStage, DispositionCode))


def _time_for(code: DispositionCode) -> datetime | None:
    return WHEN if code is D.CALLBACK else None


@pytest.mark.parametrize(("stage", "code"), ALL_PAIRS)
def test_never_moves_backwards_along_the_line_unless_explicitly_out(
    stage: PipelineStage, code: DispositionCode
) -> None:
    after = next_stage(stage, code)
    if stage in FORWARD_LINE and after in FORWARD_LINE:
        assert FORWARD_LINE.index(after) >= FORWARD_LINE.index(stage)
    if after in OFF_LINE and after != stage:
        # Leaving the line takes an explicit Lost/Nurture/not-interested/do-not-call disposition.
        assert code in {D.LOST, D.NURTURE, D.NOT_INTERESTED, D.DO_NOT_CALL}


@pytest.mark.parametrize(("stage", "code"), ALL_PAIRS)
def test_opt_out_exactly_for_do_not_call(stage: PipelineStage, code: DispositionCode) -> None:
    outcome = decide(stage, code, _time_for(code))
    assert outcome.opt_out is (code is D.DO_NOT_CALL)
    assert outcome.stage_before is stage
    assert outcome.moved is (outcome.stage_after is not stage)


@pytest.mark.parametrize("stage", list(PipelineStage))
def test_issued_is_never_left(stage: PipelineStage) -> None:
    for code in DispositionCode:
        assert next_stage(S.ISSUED, code) is S.ISSUED
    assert next_stage(stage, D.POLICY_ISSUED) is S.ISSUED


@pytest.mark.parametrize(
    "code", [D.NO_ANSWER, D.BUSY, D.ANSWERING_MACHINE, D.LEFT_VOICEMAIL, D.WRONG_NUMBER, D.DISCONNECTED_NUMBER]
)
@pytest.mark.parametrize("stage", list(PipelineStage))
def test_no_conversation_never_moves_the_lead(stage: PipelineStage, code: DispositionCode) -> None:
    outcome = decide(stage, code)
    assert outcome.stage_after is stage
    assert not outcome.counts_as_contact


@pytest.mark.parametrize(
    ("stage", "code", "expected"),
    [
        (S.NEW_LEAD, D.CONTACTED, S.CONTACTED),
        (S.NEW_LEAD, D.CALLBACK, S.CONTACTED),
        (S.NEW_LEAD, D.APPOINTMENT_SET, S.APPT_SET),
        (S.CONTACTED, D.APPOINTMENT_HELD, S.APPT_HELD),
        (S.APPT_HELD, D.SALE, S.APP_PENDING),
        (S.APP_PENDING, D.POLICY_ISSUED, S.ISSUED),
        (S.APPT_SET, D.CONTACTED, S.APPT_SET),
        (S.APP_PENDING, D.APPOINTMENT_SET, S.APP_PENDING),
        (S.APPT_SET, D.NOT_INTERESTED, S.NURTURE),
        (S.APPT_HELD, D.LOST, S.LOST),
        (S.CONTACTED, D.DO_NOT_CALL, S.LOST),
        (S.ISSUED, D.DO_NOT_CALL, S.ISSUED),
        (S.LOST, D.APPOINTMENT_SET, S.APPT_SET),
        (S.NURTURE, D.CONTACTED, S.CONTACTED),
        (S.NURTURE, D.NO_ANSWER, S.NURTURE),
        (S.LOST, D.NURTURE, S.NURTURE),
        (S.NURTURE, D.LOST, S.LOST),
    ],
)
def test_named_transitions(stage: PipelineStage, code: DispositionCode, expected: PipelineStage) -> None:
    assert decide(stage, code, _time_for(code)).stage_after is expected


def test_callback_needs_an_aware_time() -> None:
    with pytest.raises(DispositionError, match="needs callback_at"):
        decide(S.NEW_LEAD, D.CALLBACK)
    with pytest.raises(DispositionError, match="UTC offset"):
        decide(S.NEW_LEAD, D.CALLBACK, datetime(2026, 11, 24, 15, 0))
    assert decide(S.NEW_LEAD, D.CALLBACK, WHEN).callback_at == WHEN


def test_appointment_may_carry_a_time_others_may_not() -> None:
    assert decide(S.NEW_LEAD, D.APPOINTMENT_SET, WHEN).callback_at == WHEN
    with pytest.raises(DispositionError, match="does not take a callback_at"):
        decide(S.NEW_LEAD, D.NO_ANSWER, WHEN)


def test_wrong_number_flags_the_lead_for_review() -> None:
    assert decide(S.CONTACTED, D.WRONG_NUMBER).review_reason == "wrong number reported by the agent"
    assert decide(S.CONTACTED, D.CONTACTED).review_reason is None


def test_parse_code_names_the_valid_codes() -> None:
    assert parse_code("sale") is D.SALE
    with pytest.raises(DispositionError, match="unknown disposition 'sold'; expected one of: no_answer"):
        parse_code("sold")


def test_wrap_up_of_do_not_call_yields_a_stable_opt_out() -> None:
    args: dict[str, Any] = {"disposition_id": "d1", "disposed_at": WHEN, "call_id": "c1", "lead_id": "l1", "agent_id": "a1"}
    records = wrap_up_records(code="do_not_call", phone="+14045550123", **args)
    assert [kind for kind, _ in records] == ["disposition", "opt_out"]
    again = wrap_up_records(code=D.DO_NOT_CALL, phone="+14045550123", **args)
    assert records[1][1]["opt_out_id"] == again[1][1]["opt_out_id"]
    assert records[1][1]["source"] == "agent_disposition"
    for kind, record in records:
        validate(kind, record)
    with pytest.raises(DispositionError, match="needs the phone number"):
        wrap_up_records(code="do_not_call", **args)


def test_wrap_up_checks_the_callback_time_at_once() -> None:
    args: dict[str, Any] = {"disposition_id": "d1", "disposed_at": WHEN, "call_id": "c1", "lead_id": "l1", "agent_id": "a1"}
    assert [kind for kind, _ in wrap_up_records(code="callback", callback_at=WHEN, **args)] == ["disposition"]
    with pytest.raises(DispositionError, match="needs callback_at"):
        wrap_up_records(code="callback", **args)
