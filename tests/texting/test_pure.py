"""Texting's pure parts: segment counting, templates, the outbound text machine, inbound
plans and the sender pacer, driven with explicit `now`."""

from __future__ import annotations

from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compliance_rules.model import TextKind
from compliance_rules.optout import TextKeyword
from crm_bridge.webhooks import EventType
from dialer.api.webhooks import EventName
from dialer.runtime.errors import InvalidStateError
from dialer.texting import actions as a
from dialer.texting import inputs as i
from dialer.texting.inbound import HELP_GUARD_SECONDS, InboundFacts, plan
from dialer.texting.machine import UNKNOWN_DELIVERY, TextMachine, TextRequest
from dialer.texting.pacing import SenderPacer
from dialer.texting.record import TextState
from dialer.texting.segments import Encoding, measure
from dialer.texting.templates import (
    Sender,
    TemplateError,
    check_template,
    first_marketing_text,
    help_reply,
    opt_out_confirmation,
    render,
)

pytestmark = pytest.mark.timeout(30)
SENDER = Sender("Acme Insurance", "+18885550100")


# -- segments -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", Encoding.GSM7, 0, 0),
        ("a" * 160, Encoding.GSM7, 160, 1),
        ("a" * 161, Encoding.GSM7, 161, 2),
        ("a" * 306, Encoding.GSM7, 306, 2),
        ("a" * 307, Encoding.GSM7, 307, 3),
        ("a" * 400, Encoding.GSM7, 400, 3),
        ("€" * 80, Encoding.GSM7, 160, 1),  # extension characters cost two septets
        ("a" * 152 + "€" + "a" * 10, Encoding.GSM7, 164, 2),  # the escape pair is not split
        ("a" * 70 + "é", Encoding.GSM7, 71, 1),  # é is in the GSM default alphabet
        ("ç", Encoding.UCS2, 1, 1),  # ç is not (only Ç is)
        ("\N{THUMBS UP SIGN}", Encoding.UCS2, 2, 1),
        ("a" * 69 + "\N{THUMBS UP SIGN}", Encoding.UCS2, 71, 2),
        ("a" * 66 + "\N{THUMBS UP SIGN}" + "a" * 66, Encoding.UCS2, 134, 3),  # the pair moves whole to part 2
        ("\N{THUMBS UP SIGN}" + "a" * 399, Encoding.UCS2, 401, 6),
    ],
)
def test_segments(text: str, encoding: Encoding, units: int, segments: int) -> None:
    size = measure(text)
    assert (size.encoding, size.units, size.segments) == (encoding, units, segments)


@given(st.text(max_size=700))
def test_segments_hold_every_unit(text: str) -> None:
    size = measure(text)
    single, part = (160, 153) if size.encoding is Encoding.GSM7 else (70, 67)
    if size.units <= single:
        assert size.segments == (1 if text else 0)
    else:
        assert (size.segments - 1) * part < size.units <= size.segments * part + size.segments  # no split pairs


# -- templates ----------------------------------------------------------------------------------
def test_a_template_must_identify_the_agency() -> None:
    check_template("Hi {first_name}, {agency_name} here: your quote is ready.", SENDER)
    check_template("Hi {first_name}, acme insurance here.", SENDER)
    with pytest.raises(TemplateError) as error:
        check_template("Hi {first_name}, your quote is ready.", SENDER)
    assert error.value.reason == "template_lacks_identification"
    with pytest.raises(TemplateError) as error:
        check_template("Hi {nickname} from {agency_name}", SENDER)
    assert error.value.reason == "unknown_merge_field"
    with pytest.raises(TemplateError):
        check_template("   ", SENDER)


def test_render_and_first_marketing_text() -> None:
    body = render("Hi {first_name} {last_name}, {agency_name} here.", {"first_name": "Ann", "agency_name": "Acme Insurance"})
    assert body == "Hi Ann, Acme Insurance here."
    assert first_marketing_text("Your quote is ready.", SENDER) == \
        "Acme Insurance: Your quote is ready. Reply STOP to opt out."
    already = "Acme Insurance: quote ready. Text STOP to end."
    assert first_marketing_text(already, SENDER) == already


def test_service_texts() -> None:
    assert help_reply(SENDER) == "Acme Insurance: for help call (888) 555-0100. Reply STOP to opt out."
    confirmation = opt_out_confirmation(SENDER)
    assert "opted out" in confirmation and "quote" not in confirmation


# -- the outbound text machine --------------------------------------------------------------------
def request(**changes: object) -> TextRequest:
    fields: dict[str, object] = dict(message_id="msg-1", kind=TextKind.MARKETING, to_number="+12125550142",
                                     from_number="+18885550100", body="Acme: hi. Reply STOP to opt out.",
                                     decision_id="d-1", decided_at=100.0, transport="sip")
    fields.update(changes)
    return TextMachine(TextRequest(**fields), 100.0).request  # type: ignore[arg-type]


def started(**changes: object) -> TextMachine:
    machine = TextMachine(request(**changes), 100.0)
    actions = machine.handle(i.Start(), 100.0)
    assert [type(x) for x in actions] == [a.Emit, a.WaitForSlot]
    assert actions[1] == a.WaitForSlot("+18885550100", 1)
    return machine


def test_sent_at_once_without_a_second_check() -> None:
    machine = started()
    actions = machine.handle(i.SlotReached(), 100.5)
    assert [type(x) for x in actions] == [a.Emit, a.Send]
    assert machine.state is TextState.SENDING
    actions = machine.handle(i.Sent("prov-1"), 100.6)
    assert [type(x) for x in actions] == [a.Emit, a.Finished]
    record = machine.record
    assert (record.state, record.provider_message_id, record.sent_at) == (TextState.SENT, "prov-1", 100.6)
    assert record.version == 3
    assert record.to_crm()["status"] == "sent" and record.to_crm()["segments"] == 1


def test_a_text_that_waited_is_checked_again_and_may_be_blocked() -> None:
    machine = started()
    assert machine.handle(i.SlotReached(), 105.0) == [a.CheckGate()]
    actions = machine.handle(i.GateDecided(False, "d-2", ("outside_calling_window",)), 105.1)
    assert [type(x) for x in actions] == [a.Emit, a.Finished]
    assert machine.record.state is TextState.BLOCKED
    assert machine.record.decision_id == "d-2" and machine.record.detail == "outside_calling_window"


def test_a_text_that_waited_and_is_still_allowed_goes() -> None:
    machine = started()
    machine.handle(i.SlotReached(), 105.0)
    assert [type(x) for x in machine.handle(i.GateDecided(True, "d-3"), 105.1)] == [a.Emit, a.Send]
    assert machine.record.decision_id == "d-3"


def test_a_text_left_queued_by_a_dead_controller_always_passes_the_gate_again() -> None:
    # Even at once (its decision 0.1 s old): whatever the restart took, the gate decides at send time.
    machine = TextMachine.left_behind(request(), 100.0, TextState.CHECKING, version=10**12)
    actions = machine.handle(i.Start(), 100.1)
    assert [type(x) for x in actions] == [a.Emit, a.WaitForSlot]
    assert machine.record.state is TextState.QUEUED and machine.record.version == 10**12 + 1
    assert machine.handle(i.SlotReached(), 100.1) == [a.CheckGate()]
    assert [type(x) for x in machine.handle(i.GateDecided(True, "d-4"), 100.2)] == [a.Emit, a.Send]


def test_a_text_left_queued_too_long_expires_unsent() -> None:
    machine = TextMachine.left_behind(request(max_wait=60.0), 100.0, TextState.QUEUED, version=5)
    machine.handle(i.Start(), 200.0)
    actions = machine.handle(i.SlotReached(), 200.0)
    assert [type(x) for x in actions] == [a.Emit, a.Finished] and machine.state is TextState.EXPIRED


def test_a_text_left_sending_is_closed_unknown_delivery_and_never_sent_again() -> None:
    machine = TextMachine.left_behind(request(), 100.0, TextState.SENDING, version=7, provider_message_id=None)
    actions = machine.handle(i.Start(), 500.0)
    assert [type(x) for x in actions] == [a.Emit, a.Finished]
    record = machine.record
    assert record.state is TextState.FAILED and record.version == 8
    assert record.detail is not None and record.detail.startswith(UNKNOWN_DELIVERY)
    assert machine.handle(i.SlotReached(), 501.0) == []


def test_a_finished_text_is_not_taken_up() -> None:
    with pytest.raises(InvalidStateError, match="sent"):
        TextMachine.left_behind(request(), 100.0, TextState.SENT, version=1)


def test_a_text_expires_when_it_waits_too_long() -> None:
    machine = started(max_wait=60.0)
    assert machine.next_timer() == 160.0
    assert machine.handle_timer(159.0) == []
    assert [type(x) for x in machine.handle_timer(160.0)] == [a.Emit, a.Finished]
    assert machine.state is TextState.EXPIRED
    assert machine.handle(i.SlotReached(), 161.0) == []


def test_a_transport_failure_is_final() -> None:
    machine = started()
    machine.handle(i.SlotReached(), 100.1)
    machine.handle(i.SendFailed("404 endpoint not found"), 100.2)
    assert (machine.state, machine.record.detail) == (TextState.FAILED, "404 endpoint not found")


def test_cancel_only_before_it_goes_and_start_only_once() -> None:
    machine = started()
    assert [type(x) for x in machine.handle(i.Cancel(), 101.0)] == [a.Emit, a.Finished]
    assert machine.state is TextState.CANCELED
    with pytest.raises(InvalidStateError):
        machine.handle(i.Start(), 102.0)
    sending = started()
    sending.handle(i.SlotReached(), 100.1)
    assert sending.handle(i.Cancel(), 100.2) == []


def test_time_never_runs_backwards() -> None:
    machine = started()
    machine.handle(i.SlotReached(), 103.0)  # waited: checking
    assert machine.state is TextState.CHECKING
    machine.handle(i.GateDecided(True, "d-4"), 50.0)
    assert machine.state is TextState.SENDING


# -- inbound plans --------------------------------------------------------------------------------
FACTS = InboundFacts(confirmation_claimed=True, help_answered_at=None, opted_out_by_text_only=True)


def test_stop_opts_out_and_confirms_once() -> None:
    first = plan("stop please", FACTS, 10.0)
    assert (first.keyword, first.opt_out, first.confirm_opt_out) == (TextKeyword.OPT_OUT, True, True)
    again = plan("STOP", InboundFacts(False, None, True), 11.0)
    assert again.opt_out and not again.confirm_opt_out


def test_start_lifts_only_a_texted_revocation() -> None:
    assert plan("START", FACTS, 1.0).opt_in
    assert not plan("START", InboundFacts(False, None, False), 1.0).opt_in


def test_help_is_answered_but_not_in_a_loop() -> None:
    assert plan("HELP", FACTS, 1000.0).answer_help
    assert not plan("HELP", InboundFacts(False, 1000.0, False), 1000.0 + HELP_GUARD_SECONDS - 1).answer_help
    assert plan("HELP", InboundFacts(False, 1000.0, False), 1000.0 + HELP_GUARD_SECONDS).answer_help


def test_an_ordinary_reply_asks_for_nothing() -> None:
    result = plan("\N{THUMBS UP SIGN}", FACTS, 1.0)
    assert result.keyword is None and not (result.opt_out or result.opt_in or result.answer_help)


# -- the sender pacer -----------------------------------------------------------------------------
def test_one_slot_per_second_per_sender_and_per_segment() -> None:
    pacer = SenderPacer(1.0)
    assert [pacer.reserve("+18885550100", 10.0) for _ in range(3)] == [10.0, 11.0, 12.0]
    assert pacer.reserve("+18885550199", 10.0) == 10.0  # another number has its own slots
    assert pacer.reserve("+18885550100", 10.0, segments=3) == 13.0
    assert pacer.reserve("+18885550100", 10.0) == 16.0
    pacer.forget_idle(100.0)
    assert pacer.reserve("+18885550100", 100.0) == 100.0


# -- every sequence of inputs -------------------------------------------------------------------
_INPUTS = st.one_of(
    st.just(i.SlotReached()), st.just(i.Cancel()), st.builds(i.Sent, st.just("prov")),
    st.builds(i.SendFailed, st.just("refused")),
    st.builds(i.GateDecided, st.booleans(), st.just("d-9"), st.just(("opted_out",))),
)


@given(st.lists(st.tuples(_INPUTS, st.floats(0, 2000, allow_nan=False)), max_size=12), st.lists(st.floats(0, 2000), max_size=3))
def test_any_sequence_sends_at_most_once_and_only_when_allowed(
    steps: list[tuple[i.TextInput, float]], timers: list[float]
) -> None:
    machine = TextMachine(request(max_wait=900.0), 100.0)
    emitted: list[a.TextAction] = list(machine.handle(i.Start(), 100.0))
    allowed_since_wait = False
    for event, at in steps:
        state_before = machine.state
        actions = machine.handle(event, 100.0 + at)
        if isinstance(event, i.GateDecided) and state_before is TextState.CHECKING:
            allowed_since_wait = event.allowed
        for action in actions:
            if isinstance(action, a.Send):
                waited = state_before is TextState.CHECKING
                assert not waited or allowed_since_wait  # a text that waited goes only if allowed again
        emitted += actions
    for at in timers:
        emitted += machine.handle_timer(100.0 + at)
    sends = [x for x in emitted if isinstance(x, a.Send)]
    finished = [x for x in emitted if isinstance(x, a.Finished)]
    versions = [x.record.version for x in emitted if isinstance(x, a.Emit)]
    assert len(sends) <= 1 and len(finished) <= 1
    assert versions == sorted(set(versions))  # every snapshot newer than the last
    if finished:
        assert emitted[-1] == finished[0] and finished[0].record.state.final
        assert machine.state.final
    if machine.state is TextState.SENT:
        assert len(sends) == 1


def test_subscriptions_take_every_webhook_event_type() -> None:
    # A type the dialer emits but the API refuses would be an event no CRM can subscribe to.
    assert set(get_args(EventName)) == {event.value for event in EventType}
