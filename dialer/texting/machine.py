"""One outbound text as a pure machine. No IO.

The gate decided when the text was asked for (`TextRequest.decided_at`). The text then waits
for its sender number's slot under the rate limit; if it waited longer than `recheck_after`,
the gate is asked again at that instant (so a text queued across the close of the calling
window, or past an opt-out that arrived meanwhile, never goes); a text that waited longer than
`max_wait` expires. Only then is it handed to the transport. Every state change is a snapshot
for the CRM `messages` row, written durably before the next step (the `sending` row exists
before the transport sees the text).

A text a dead controller left unfinished is taken up by the next one (`TextMachine.left_behind`):
one never handed to the transport (`queued`, `checking`) waits for its slot again and always
passes the gate again before it goes; one `sending` may have reached the carrier, so it is
never handed over again (a second marketing text is a second call under 47 U.S.C. 227(b)) but
ends `failed` with `unknown_delivery` as its detail (a delivery receipt may still arrive).
"""

from __future__ import annotations

from dataclasses import dataclass

from compliance_rules.model import TextKind
from dialer.runtime.errors import InvalidStateError
from dialer.texting.actions import CheckGate, Emit, Finished, Send, TextAction, WaitForSlot
from dialer.texting.inputs import Cancel, GateDecided, SendFailed, Sent, SlotReached, Start, TextInput
from dialer.texting.record import TextRecord, TextState
from dialer.texting.segments import TextSize, measure

UNKNOWN_DELIVERY = "unknown_delivery"
UNKNOWN_DELIVERY_DETAIL = (f"{UNKNOWN_DELIVERY}: the controller stopped while handing the text to the carrier; "
                           "it may have gone, so it is not sent again")


@dataclass(frozen=True)
class TextRequest:
    message_id: str
    kind: TextKind
    to_number: str
    from_number: str
    body: str
    decision_id: str
    decided_at: float  # when the gate allowed it (the request's check)
    transport: str
    lead_id: str | None = None
    agent_id: str | None = None
    campaign_id: str | None = None
    template_id: str | None = None
    requested_by: str | None = None
    recheck_after: float = 1.0  # a text that waited longer is checked again before it goes
    max_wait: float = 900.0  # a text that waited longer expires

    def __post_init__(self) -> None:
        if self.recheck_after < 0 or self.max_wait <= 0:
            raise ValueError("recheck_after must be >= 0 and max_wait > 0")

    @property
    def size(self) -> TextSize:
        return measure(self.body)


class TextMachine:
    """`handle(input, now)` -> actions; `next_timer()`/`handle_timer(now)` for the wait limit."""

    def __init__(self, request: TextRequest, requested_at: float, *, left_in: TextState | None = None) -> None:
        """`left_in`: the state a dead controller left this text in (`left_behind`)."""
        self.request = request
        self.size = request.size
        self.state = TextState.QUEUED
        self.requested_at = requested_at
        self.decision_id: str | None = request.decision_id
        self.provider_message_id: str | None = None
        self.sent_at: float | None = None
        self.detail: str | None = None
        self.version = 0
        self._started = False
        self._now = requested_at
        self._left_sending = left_in is TextState.SENDING
        # A text taken up after a restart always asks the gate again before it goes.
        self._gate_again = left_in is not None

    @classmethod
    def left_behind(cls, request: TextRequest, requested_at: float, state: TextState, *, version: int,
                    provider_message_id: str | None = None) -> TextMachine:
        """A text a dead controller left in `state` (not final), taken up by this one: its
        snapshots count from `version` (above any the dead process wrote). `Start` then queues
        it again (`queued`, `checking`: nothing was handed over) or closes it (`sending`)."""
        if state.final:
            raise InvalidStateError(f"a {state.value} text is finished", state=state, operation="take up")
        machine = cls(request, requested_at, left_in=state)
        machine.version = version
        machine.provider_message_id = provider_message_id
        machine.decision_id = request.decision_id or None
        return machine

    @property
    def record(self) -> TextRecord:
        r = self.request
        return TextRecord(
            message_id=r.message_id, version=self.version, kind=r.kind, lead_id=r.lead_id, agent_id=r.agent_id,
            campaign_id=r.campaign_id, from_number=r.from_number, to_number=r.to_number, body=r.body, size=self.size,
            state=self.state, requested_at=self.requested_at, transport=r.transport, decision_id=self.decision_id,
            provider_message_id=self.provider_message_id, sent_at=self.sent_at, detail=self.detail,
            template_id=r.template_id, requested_by=r.requested_by,
        )

    def next_timer(self) -> float | None:
        if self.state in (TextState.QUEUED, TextState.CHECKING):
            return self.requested_at + self.request.max_wait
        return None

    def handle(self, event: TextInput, now: float) -> list[TextAction]:
        now = max(now, self._now)
        self._now = now
        if isinstance(event, Start):
            if self._started:
                raise InvalidStateError(f"the text is already started (state {self.state.value})", state=self.state,
                                        operation="start")
            self._started = True
            if self._left_sending:
                return self._end(TextState.FAILED, UNKNOWN_DELIVERY_DETAIL)
            return [self._emit(), WaitForSlot(self.request.from_number, self.size.segments)]
        if not self._started or self.state.final:
            return []
        match event:
            case SlotReached() if self.state is TextState.QUEUED:
                if now - self.requested_at >= self.request.max_wait:
                    return self._end(TextState.EXPIRED, f"waited {now - self.requested_at:.0f} s for its slot")
                if not self._gate_again and now - self.request.decided_at <= self.request.recheck_after:
                    return self._send(now)
                self.state = TextState.CHECKING
                return [CheckGate()]
            case GateDecided(allowed=allowed, decision_id=decision_id, reasons=reasons) if self.state is TextState.CHECKING:
                self.decision_id = decision_id or self.decision_id
                if not allowed:
                    return self._end(TextState.BLOCKED, ", ".join(reasons) or "blocked")
                return self._send(now)
            case Sent(provider_message_id=provider_id) if self.state is TextState.SENDING:
                self.provider_message_id = provider_id
                self.sent_at = now
                return self._end(TextState.SENT)
            case SendFailed(reason=reason) if self.state is TextState.SENDING:
                return self._end(TextState.FAILED, reason)
            case Cancel(reason=reason) if self.state in (TextState.QUEUED, TextState.CHECKING):
                return self._end(TextState.CANCELED, reason)
        return []

    def handle_timer(self, now: float) -> list[TextAction]:
        now = max(now, self._now)
        self._now = now
        deadline = self.next_timer()
        if deadline is None or now < deadline:
            return []
        return self._end(TextState.EXPIRED, f"not sent within {self.request.max_wait:.0f} s")

    def _emit(self) -> Emit:
        self.version += 1
        return Emit(self.record)

    def _send(self, now: float) -> list[TextAction]:
        del now
        self.state = TextState.SENDING
        emit = self._emit()
        return [emit, Send(emit.record)]

    def _end(self, state: TextState, detail: str | None = None) -> list[TextAction]:
        self.state = state
        self.detail = detail
        emit = self._emit()
        return [emit, Finished(emit.record)]
