"""A controller that lost its lease hands no text to any transport (an HTTP provider is not
behind the ARI client's fence): the sending step of a real `TextRunner`, with a real
`ControllerLease` whose loss is set by hand (no Redis: the check reads only the lease's clock)
and a transport that records what it is given."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, cast

import pytest

from compliance_rules.model import ContactRequest, TextKind
from dialer.runtime.lease import ControllerLease
from dialer.runtime.services import CallServices
from dialer.texting import actions as a
from dialer.texting import inputs as i
from dialer.texting.machine import TextMachine, TextRequest
from dialer.texting.record import TextState
from dialer.texting.runtime import LEASE_LOST, TextingRuntime, TextingSettings, TextRunner
from dialer.texting.transport import OutgoingText

pytestmark = pytest.mark.timeout(10)


class RecordingTransport:
    name = "http"

    def __init__(self) -> None:
        self.sent: list[OutgoingText] = []

    async def send(self, text: OutgoingText) -> str:
        self.sent.append(text)
        return f"SM{len(self.sent)}"

    async def close(self) -> None:
        return None


def sending(lease: ControllerLease) -> tuple[TextRunner, RecordingTransport, a.Send]:
    """A runner whose text is `sending` (its row written), with the `Send` action next."""
    transport = RecordingTransport()
    services = cast(CallServices, SimpleNamespace(ari=None, dispatcher=None))
    texting = TextingRuntime(services, transport, TextingSettings())
    texting.fence = lease.check
    now = time.time()
    machine = TextMachine(TextRequest(message_id="txt-fence-1", kind=TextKind.MARKETING, to_number="+12125550111",
                                      from_number="+18885550100", body="Acme Insurance: hello", decision_id="d-1",
                                      decided_at=now, transport="http"), now)
    machine.handle(i.Start(), now)
    actions = machine.handle(i.SlotReached(), now)
    send = actions[-1]
    assert isinstance(send, a.Send) and machine.state is TextState.SENDING
    return TextRunner(texting, machine, cast(ContactRequest, None), None), transport, send


def held_lease() -> ControllerLease:
    lease = ControllerLease(cast(Any, None), "test:", "controller-a", clock=time.monotonic)
    lease.state.taken(7, time.monotonic())
    return lease


async def test_a_controller_that_lost_its_lease_hands_no_text_over_and_the_text_fails() -> None:
    lease = held_lease()
    lease.state.lost = True  # a renewal found another controller's token
    runner, transport, send = sending(lease)
    result = await runner.perform(send)
    assert transport.sent == []
    assert isinstance(result, i.SendFailed) and result.reason.startswith(f"{LEASE_LOST}: ")
    actions = runner.machine.handle(result, time.time())
    record = runner.machine.record
    assert (record.state, record.provider_message_id) == (TextState.FAILED, None)
    assert record.detail is not None and record.detail.startswith(LEASE_LOST)
    assert [type(action) for action in actions] == [a.Emit, a.Finished]


async def test_a_lease_run_out_by_the_clock_also_stops_the_text() -> None:
    lease = held_lease()
    lease.state.renewed_at = time.monotonic() - 60  # not renewed for a minute (a suspended host)
    runner, transport, send = sending(lease)
    assert isinstance(await runner.perform(send), i.SendFailed)
    assert transport.sent == []


async def test_a_controller_that_holds_its_lease_sends() -> None:
    runner, transport, send = sending(held_lease())
    assert await runner.perform(send) == i.Sent("SM1")
    assert [text.message_id for text in transport.sent] == ["txt-fence-1"]
