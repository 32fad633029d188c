"""Texting on the runtime kernel: one `TextRunner` per outbound text around the pure
`TextMachine`, and the inbound path (`receive`) for texts leads send.

Outbound: the request is validated, its body built (template, merge fields, the identification
and opt-out wording of a first marketing text), and the gate asked with channel `sms` and the
text's kind (`decide_at_dial`: a marketing text takes a frequency-cap slot). Blocked: the
reasons (the decision is audited like a call's), nothing is queued. Allowed: a runner waits for
the sender number's slot, asks the gate again when it waited, hands the text to the transport,
and writes every state to the CRM `messages` row durably before the next step.

Inbound (ARI `TextMessageReceived` or the provider's webhook): one ordered worker, so a STOP
and the START after it are handled in order. The text is kept on the lead's record; a
revocation goes through `OptOuts` (the CRM record durable first, then Redis: the next gate
decision anywhere, voice included, is blocked) with the lead's written consents revoked, then
at most one confirmation text; HELP gets the agency's name and contact; START lifts a texted
revocation and is kept as consent evidence; the lead's agent gets the text on its event stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

import structlog

from compliance_rules.model import Channel, ContactRequest, DialMode, TextKind
from compliance_rules.numbers import parse_number
from compliance_rules.optout import block
from compliance_rules.policy import CampaignPolicy
from compliance_rules.rules import OPTOUT
from crm_bridge.kinds import RecordKind
from crm_bridge.outbox import OutboxError
from crm_bridge.store import Campaign, Lead, Message
from dialer.ari.events import Snapshot
from dialer.ari.models import Event, TextMessageReceived
from dialer.runtime.agents import active_agent
from dialer.runtime.errors import BlockedReason, ComplianceBlocked, Refused
from dialer.runtime.gate import contact_request, decide_at_dial, policy_for_campaign
from dialer.runtime.ids import Prefix, new_id, text_confirmation_key, text_help_key
from dialer.runtime.lease import Fenced
from dialer.runtime.reconcile import reconciled_version
from dialer.runtime.runner import MachineRunner, RunnerHost
from dialer.runtime.screen_pop import lead_name
from dialer.runtime.services import CallServices
from dialer.runtime.slice import RuntimeSlice
from dialer.settings import Settings
from dialer.texting import actions as a
from dialer.texting import inputs as i
from dialer.texting.inbound import HELP_GUARD_SECONDS, InboundFacts, InboundPlan, plan
from dialer.texting.machine import TextMachine, TextRequest
from dialer.texting.pacing import SenderPacer
from dialer.texting.provider import ProviderConfig, ProviderTextTransport
from dialer.texting.record import Direction, TextRecord, TextState
from dialer.texting.segments import MAX_CHARACTERS, MAX_SEGMENTS, measure
from dialer.texting.sip import SipTextTransport
from dialer.texting.templates import (
    Sender,
    TemplateError,
    check_merge_fields,
    check_template,
    first_marketing_text,
    help_reply,
    opt_out_confirmation,
    render,
)
from dialer.texting.transport import DeliveryReceipt, InboundText, OutgoingText, TextTransport, TransportError

log = structlog.get_logger(__name__)

INBOUND_QUEUE_LIMIT = 10_000
BLOCK_ATTEMPTS = 8
T = TypeVar("T")
CONVERSATIONS_KEPT = 10_000
TAKE_UP_PAGE = 500
# The detail of a text a controller did not hand over because its lease was over.
LEASE_LOST = "lease_lost"


@dataclass(frozen=True)
class TextingSettings:
    default_sender: str = "+18885550100"
    agency_name: str = "Insurance Agency"
    segments_per_second: float = 1.0  # per sender number
    recheck_after: float = 1.0
    max_wait: float = 900.0
    # A conversation the lead started stays open this long after the lead's last text.
    conversation_hours: float = 24.0
    # The confirmation of a revocation must go within 5 minutes (47 CFR 64.1200(a)(12)).
    confirmation_max_wait: float = 240.0


@dataclass(frozen=True)
class SendRequest:
    """`POST /v1/messages`: a text to a lead (or an ad-hoc number)."""

    lead_id: str | None = None
    phone: str | None = None
    agent_id: str | None = None
    campaign_id: str | None = None
    body: str | None = None
    template_id: str | None = None
    kind: TextKind | None = None  # marketing or conversation; None: conversation if the lead started one
    requested_by: str | None = None


@dataclass(frozen=True)
class QueuedText:
    message_id: str
    status: str
    kind: TextKind
    body: str
    encoding: str
    segments: int
    decision_id: str

    def to_json(self) -> dict[str, object]:
        return {"message_id": self.message_id, "status": self.status, "kind": self.kind.value, "body": self.body,
                "encoding": self.encoding, "segments": self.segments, "decision_id": self.decision_id}


def textable_number(raw: str) -> str:
    """`raw` as E.164 when it is a US number a text can reach (a geographic number: mobile, or a
    landline phonenumbers cannot tell apart); `Refused` 422 otherwise (toll-free, premium, not US)."""
    number = parse_number(raw)
    if number.e164 is None or not number.ok or not number.geographic:
        why = number.detail or "not a geographic (mobile-capable) number"
        raise Refused(422, "not_textable", f"{raw!r} is not a US mobile-capable number: {why}", field_name="phone")
    return number.e164


class TextingHost(RunnerHost, Protocol):
    def finished(self, record: TextRecord) -> None: ...


class TextRunner(MachineRunner[i.TextInput, a.TextAction]):
    """One outbound text: its machine, inbox and task."""

    machine: TextMachine

    def __init__(self, host: TextingRuntime, machine: TextMachine, gate_request: ContactRequest,
                 campaign: Campaign | None) -> None:
        request = machine.request
        super().__init__(request.message_id, machine, host,
                         log.bind(message_id=request.message_id, lead_id=request.lead_id,
                                  campaign_id=request.campaign_id, agent_id=request.agent_id))
        self.texting = host
        self.services = host.services
        self.gate_request = gate_request
        self.campaign = campaign
        self.cancelled = asyncio.Event()
        # Set once the text's first record (queued) is durable in the outbox: the API answers
        # 202 only then, so a controller killed right after the answer still leaves the text
        # in the CRM. An exception here (the outbox refused the write) is the API's answer.
        self.recorded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.recorded.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            if not self.recorded.done():  # stopped (shutdown) before its first record was kept
                self.recorded.set_exception(
                    Refused(503, "texting_stopped", "the dialer is stopping: the text was not queued; retry"))

    def translate(self, event: Event) -> list[i.TextInput]:
        return []  # a text owns no channel; its news comes from its own actions

    def ended(self) -> bool:
        return self.machine.state.final

    async def perform(self, action: a.TextAction) -> i.TextInput | None:
        match action:
            case a.WaitForSlot(sender=sender, segments=segments):
                # The sender's slots are kept on the monotonic clock: on the wall clock, a step
                # back (NTP, a VM restored) left every slot reserved before it in the "future",
                # and each text of that sender waited out the step, then expired unsent.
                at = self.texting.pacer.reserve(sender, time.monotonic(), segments)
                # Never past the text's own deadline, and a cancel (shutdown) wakes it at once.
                wait = min(at - time.monotonic(), self.machine.requested_at + self.machine.request.max_wait - time.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.cancelled.wait(), max(0.0, wait))
                return None if self.cancelled.is_set() else i.SlotReached()
            case a.CheckGate():
                decision = await decide_at_dial(self.services.gate, self.gate_request,
                                                self.texting.policy(self.campaign, self.gate_request), self.log)
                if decision is None:
                    return i.GateDecided(False, None, ("gate_unavailable",))
                return i.GateDecided(decision.allowed, decision.decision_id,
                                     tuple(code.value for code in decision.codes))
            case a.Send(record=record):
                try:
                    provider_id = await self.texting.hand_over(
                        OutgoingText(record.message_id, record.from_number, record.to_number, record.body))
                except Fenced as error:
                    self.log.error("text_not_sent_lease_lost", error=str(error))
                    return i.SendFailed(f"{LEASE_LOST}: {error}")
                except TransportError as error:
                    return i.SendFailed(str(error))
                return i.Sent(provider_id)
            case a.Emit(record=record):
                try:
                    await self.services.records.put(RecordKind.MESSAGE, record.to_crm())
                except BaseException as error:
                    if not self.recorded.done():
                        self.recorded.set_exception(error)
                    raise
                if not self.recorded.done():
                    self.recorded.set_result(None)
                self.log.info("text_state", state=record.state.value, detail=record.detail)
            case a.Finished(record=record):
                self.texting.finished(record)
        return None


class TextingRuntime(RuntimeSlice[TextRunner]):
    """Sends and receives texts; the HTTP API's texting service."""

    name = "texting"
    prefixes = (Prefix.TEXT,)

    def __init__(self, services: CallServices, transport: TextTransport, settings: TextingSettings) -> None:
        super().__init__(services.ari, services.dispatcher)
        self.services = services
        self.transport = transport
        self.settings = settings
        self.pacer = SenderPacer(settings.segments_per_second)
        self.finished_listeners: list[Callable[[TextRecord], None]] = []
        self.inbound_listeners: list[Callable[[InboundText, InboundPlan, str | None], None]] = []
        self._taken_up: set[str] = set()  # the texts left by a dead controller this one took up
        self._inbound: asyncio.Queue[InboundText | DeliveryReceipt | None] = asyncio.Queue(INBOUND_QUEUE_LIMIT)
        # (lead number, our number) -> (campaign id, agent id) of our last text: an answer can
        # arrive before that text's row has left the outbox for PostgreSQL.
        self._conversations: OrderedDict[tuple[str, str], tuple[str | None, str | None]] = OrderedDict()
        self.hurry_seconds = 5.0
        # Raises `Fenced` once this controller's lease is over (`dialer serve` sets the lease's
        # check); None: no lease (a single controller).
        self.fence: Callable[[], None] | None = None

    @property
    def redis_prefix(self) -> str:
        return self.services.dnc.prefix

    # -- lifecycle -----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The slice's task group, with the ordered worker for inbound texts and receipts."""
        async with super().running():
            self.spawn(self._inbound_worker(), "texting-inbound")
            yield

    def finished(self, record: TextRecord) -> None:
        for listener in self.finished_listeners:
            try:
                listener(record)
            except Exception:
                log.exception("finished_listener_failed", message_id=record.message_id)

    async def hand_over(self, text: OutgoingText) -> str:
        """The one place a text goes to a transport (SIP or an HTTP provider): never from a
        controller that lost its lease, since another controller owns sending now and a second
        copy of a text is a second call under the TCPA. `Fenced`, `TransportError`."""
        if self.fence is not None:
            self.fence()
        return await self.transport.send(text)

    def hurry(self, runner: TextRunner) -> None:
        runner.cancelled.set()
        runner.feed(i.Cancel())

    async def after_drain(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._inbound.put_nowait(None)  # the worker ends after what is queued
        await self.transport.close()

    # -- Asterisk connection -------------------------------------------------------------------
    async def on_connected(self, generation: int, snapshot: Snapshot) -> None:
        """Texts from the trunk reach the app only while it subscribes to the trunk endpoint;
        Asterisk forgets subscriptions when it restarts, so this runs after every connect."""
        if isinstance(self.transport, SipTextTransport):
            try:
                await self.ari.subscribe(self.transport.event_source)
            except Exception as error:
                log.error("texting_subscribe_failed", error=repr(error), generation=generation)

    async def claim(self, event: Event) -> bool:
        if not isinstance(event, TextMessageReceived) or not isinstance(self.transport, SipTextTransport):
            return False
        parsed = self.transport.parse(event)
        if parsed is None:
            return False
        self.accept(parsed)
        return True

    def accept(self, item: InboundText | DeliveryReceipt) -> None:
        """Queue an inbound text or a receipt for the ordered worker (never waits)."""
        try:
            self._inbound.put_nowait(item)
        except asyncio.QueueFull:
            log.error("texting_inbound_queue_full", item=type(item).__name__)

    async def _inbound_worker(self) -> None:
        while (item := await self._inbound.get()) is not None:
            try:
                if isinstance(item, DeliveryReceipt):
                    await self.receipt(item)
                else:
                    await self.receive(item)
            except Exception:
                log.exception("texting_inbound_failed", item=type(item).__name__)

    # -- reading ---------------------------------------------------------------------------------
    def status(self, message_id: str) -> str | None:
        runner = self.runners.get(message_id)
        return None if runner is None else runner.machine.state.value

    def policy(self, campaign: Campaign | None, request: ContactRequest) -> CampaignPolicy:
        return policy_for_campaign(campaign, dial_mode=request.dial_mode)

    def sender_for(self, campaign: Campaign | None) -> Sender:
        name = (campaign.seller_name if campaign and campaign.seller_name else self.settings.agency_name)
        phone = (campaign.dnc_callback_number or campaign.caller_id if campaign else None) or self.settings.default_sender
        return Sender(name, phone)

    def from_number(self, campaign: Campaign | None) -> str:
        return campaign.caller_id if campaign and campaign.caller_id else self.settings.default_sender

    # -- outbound ----------------------------------------------------------------------------------
    async def send_text(self, request: SendRequest, *, message_id: str | None = None) -> QueuedText:
        """Validate, build and gate a text; queue it. `Refused` for bad input, `ComplianceBlocked`."""
        self.refuse_unless_accepting("sending texts")
        store = self.services.store
        message_id = message_id or new_id(Prefix.TEXT)
        template = None
        campaign_id = request.campaign_id
        if request.template_id is not None:
            template = await store.get_template(request.template_id)
            if template is None:
                raise Refused(422, "unknown_template", f"no template {request.template_id!r}", field_name="template_id")
            if campaign_id is not None and campaign_id != template.campaign_id:
                raise Refused(422, "template_of_another_campaign",
                              f"template {template.template_id!r} belongs to campaign {template.campaign_id!r}",
                              field_name="template_id")
            campaign_id = template.campaign_id
        campaign = await self._campaign(campaign_id)
        agent = await active_agent(store, request.agent_id) if request.agent_id else None
        lead, phone = await self._lead_and_phone(request)
        sender = self.sender_for(campaign)
        from_number = self.from_number(campaign)
        kind = await self._kind(request.kind, phone, from_number)
        raw = template.body if template is not None else (request.body or "")
        if template is not None:
            try:
                check_template(raw, sender)  # a template stored before the agency's name changed
            except TemplateError as error:
                raise Refused(422, error.reason, str(error), field_name="template_id") from None
        if not raw.strip():
            raise Refused(422, "empty_body", "the text has no body", field_name="body")
        if len(raw) > MAX_CHARACTERS:
            raise Refused(422, "too_long", f"a text has at most {MAX_CHARACTERS} characters", field_name="body")
        if template is None:
            try:
                check_merge_fields(raw)
            except TemplateError as error:
                raise Refused(422, error.reason, str(error), field_name="body") from None
        body = render(raw, {
            "first_name": lead.first_name if lead else None, "last_name": lead.last_name if lead else None,
            "agency_name": sender.agency_name, "agency_phone": sender.agency_phone,
            "agent_name": agent.name if agent else None,
        })
        if kind is TextKind.MARKETING and await self._first_marketing(phone, from_number):
            body = first_marketing_text(body, sender)
        size = measure(body)
        if size.segments > MAX_SEGMENTS or len(body) > MAX_CHARACTERS:
            raise Refused(422, "too_long", f"the text would take {size.segments} segments ({len(body)} characters); "
                          f"at most {MAX_SEGMENTS} segments and {MAX_CHARACTERS} characters", field_name="body")
        gate_request = self._gate_request(phone, lead, kind)
        decision = await decide_at_dial(self.services.gate, gate_request, self.policy(campaign, gate_request), log)
        if decision is None or not decision.allowed:
            reasons = ([BlockedReason(r.code.value, r.message, r.citation) for r in decision.reasons] if decision
                       else [BlockedReason("gate_unavailable", "the compliance gate could not decide")])
            raise ComplianceBlocked(decision.decision_id if decision else "", reasons)
        lead_id = lead.lead_id if lead is not None else await self._adhoc_lead(phone)
        now = time.time()
        text = TextRequest(
            message_id=message_id, kind=kind, to_number=phone, from_number=from_number, body=body,
            decision_id=decision.decision_id, decided_at=now, transport=self.transport.name, lead_id=lead_id,
            agent_id=agent.agent_id if agent else None, campaign_id=campaign.campaign_id if campaign else None,
            template_id=template.template_id if template else None, requested_by=request.requested_by,
            recheck_after=self.settings.recheck_after, max_wait=self.settings.max_wait,
        )
        # 202 means it will arrive: the queued row is durable before the answer.
        try:
            await asyncio.shield(self._start(text, gate_request, campaign, now).recorded)
        except OutboxError as error:
            raise Refused(503, "outbox_unavailable", f"the text could not be kept ({error}); retry") from None
        return QueuedText(message_id, TextState.QUEUED.value, kind, body, size.encoding.value, size.segments,
                          decision.decision_id)

    async def take_up_left(self, before: datetime) -> tuple[int, int]:
        """The outbound texts a dead controller left unfinished (created `before` this one
        started), taken up once at start: a text never handed to the transport is queued again
        and goes only if the gate allows it at that instant (else `blocked`, or `expired` past
        its wait); a text `sending` is closed `failed` (`unknown_delivery`), never sent twice.
        The outbox's pending records must be delivered first (the CRM row is the truth read
        here). (texts queued again, texts closed)."""
        queued = closed = 0
        after: tuple[datetime, str] | None = None
        while True:
            page = await self.services.store.list_unfinished_messages(
                [TextState.QUEUED.value, TextState.CHECKING.value, TextState.SENDING.value], before=before,
                after=after, limit=TAKE_UP_PAGE)
            for message in page:
                taken = await self._take_up(message)
                queued += taken is True
                closed += taken is False
            if len(page) < TAKE_UP_PAGE:
                return queued, closed
            after = (page[-1].created_at, page[-1].message_id)

    async def _take_up(self, message: Message) -> bool | None:
        """One text left unfinished: True when queued again, False when closed, None when this
        start took it up already."""
        if message.message_id in self._taken_up:
            return None  # a retry of this start (PostgreSQL failed midway) may read its old row
        store = self.services.store
        state = TextState(message.status)
        kind = TextKind(message.kind)
        machine = TextMachine.left_behind(self._left_request(message, kind), message.created_at.timestamp(), state,
                                          version=reconciled_version(),
                                          provider_message_id=message.provider_message_id)
        if state is TextState.SENDING:
            for action in machine.handle(i.Start(), time.time()):
                if isinstance(action, a.Emit):
                    await self.services.records.put(RecordKind.MESSAGE, action.record.to_crm())
                    self._taken_up.add(message.message_id)
                elif isinstance(action, a.Finished):
                    self.finished(action.record)
            log.warning("text_left_sending_closed", message_id=message.message_id, lead_id=message.lead_id,
                        detail=machine.detail)
            return False
        lead = await store.get_lead(message.lead_id) if message.lead_id else None
        campaign = await store.get_campaign(message.campaign_id) if message.campaign_id else None
        runner = self._start_machine(machine, self._gate_request(message.to_number, lead, kind), campaign)
        self._taken_up.add(message.message_id)  # its runner is this text's one owner from now on
        await asyncio.shield(runner.recorded)
        log.info("text_left_queued_again", message_id=message.message_id, lead_id=message.lead_id, state=state.value)
        return True

    def _left_request(self, message: Message, kind: TextKind) -> TextRequest:
        service = kind in (TextKind.HELP_REPLY, TextKind.OPT_OUT_CONFIRMATION)
        wait = self.settings.confirmation_max_wait if service else self.settings.max_wait
        return TextRequest(
            message_id=message.message_id, kind=kind, to_number=message.to_number, from_number=message.from_number,
            body=message.body, decision_id=message.compliance_decision_id or "",
            decided_at=message.created_at.timestamp(), transport=self.transport.name, lead_id=message.lead_id,
            agent_id=message.agent_id, campaign_id=message.campaign_id, template_id=message.template_id,
            requested_by=message.requested_by, recheck_after=wait if service else self.settings.recheck_after,
            max_wait=wait,
        )

    def _start(self, text: TextRequest, gate_request: ContactRequest, campaign: Campaign | None,
               now: float) -> TextRunner:
        return self._start_machine(TextMachine(text, now), gate_request, campaign)

    def _start_machine(self, machine: TextMachine, gate_request: ContactRequest,
                       campaign: Campaign | None) -> TextRunner:
        text = machine.request
        key = (text.to_number, text.from_number)
        self._conversations[key] = (text.campaign_id, text.agent_id)
        self._conversations.move_to_end(key)
        while len(self._conversations) > CONVERSATIONS_KEPT:
            self._conversations.popitem(last=False)
        runner = TextRunner(self, machine, gate_request, campaign)
        self.start_runner(runner)
        runner.feed(i.Start())
        return runner

    def _gate_request(self, phone: str, lead: Lead | None, kind: TextKind) -> ContactRequest:
        # A marketing text is sent by the system (automated); a reply is typed by a person.
        mode = DialMode.POWER if kind is TextKind.MARKETING else DialMode.MANUAL
        return replace(contact_request(phone, lead, dial_mode=mode), channel=Channel.SMS, text_kind=kind)

    async def _campaign(self, campaign_id: str | None) -> Campaign | None:
        if campaign_id is None:
            return None
        campaign = await self.services.store.get_campaign(campaign_id)
        if campaign is None:
            raise Refused(422, "unknown_campaign", f"no campaign {campaign_id!r}", field_name="campaign_id")
        if not campaign.active:
            raise Refused(409, "campaign_inactive", f"campaign {campaign_id!r} is not active", field_name="campaign_id")
        return campaign

    async def _lead_and_phone(self, request: SendRequest) -> tuple[Lead | None, str]:
        store = self.services.store
        if request.lead_id is not None:
            lead = await store.get_lead(request.lead_id)
            if lead is None:
                raise Refused(422, "unknown_lead", f"no lead {request.lead_id!r}", field_name="lead_id")
            if not lead.phones:
                raise Refused(422, "lead_has_no_phone", f"lead {lead.lead_id!r} has no phone", field_name="lead_id")
            for phone in lead.phones:
                number = parse_number(phone)
                if number.ok and number.geographic and number.e164:
                    return lead, number.e164
            raise Refused(422, "not_textable", f"lead {lead.lead_id!r} has no US mobile-capable number",
                          field_name="lead_id")
        assert request.phone is not None
        phone = textable_number(request.phone)
        leads = await store.find_leads_by_phone(phone)
        return (leads[0] if leads else None), phone

    async def _kind(self, asked: TextKind | None, phone: str, from_number: str) -> TextKind:
        if asked is TextKind.MARKETING:
            return asked
        opened_by_lead = await self._conversation_opened_by_lead(phone, from_number)
        if asked is TextKind.CONVERSATION and not opened_by_lead:
            raise Refused(409, "no_open_conversation",
                          "the lead has not texted in the last "
                          f"{self.settings.conversation_hours:g} h: a text that starts a conversation is marketing",
                          field_name="kind")
        return TextKind.CONVERSATION if opened_by_lead else TextKind.MARKETING

    async def _conversation_opened_by_lead(self, phone: str, from_number: str) -> bool:
        """The lead texted us within the conversation window, and we had not texted them
        marketing first in the window before that."""
        store = self.services.store
        since = datetime.now(UTC) - timedelta(hours=self.settings.conversation_hours)
        inbound = await store.latest_message(direction="inbound", lead_number=phone, agency_number=from_number,
                                             since=since)
        if inbound is None:
            return False
        marketing = await store.latest_message(direction="outbound", lead_number=phone, agency_number=from_number,
                                               since=inbound.created_at - timedelta(hours=self.settings.conversation_hours),
                                               kinds=[TextKind.MARKETING.value])
        return marketing is None or marketing.created_at > inbound.created_at

    async def _first_marketing(self, phone: str, from_number: str) -> bool:
        since = datetime.now(UTC) - timedelta(hours=self.settings.conversation_hours)
        earlier = await self.services.store.latest_message(
            direction="outbound", lead_number=phone, agency_number=from_number, since=since,
            kinds=[TextKind.MARKETING.value])
        return earlier is None or earlier.status in ("blocked", "expired", "failed", "canceled")

    async def _adhoc_lead(self, phone: str, source: str = "texting") -> str:
        lead_id = new_id(Prefix.LEAD)
        await self.services.records.put(RecordKind.LEAD_UPSERT, {"lead_id": lead_id, "phones": [phone], "source": source})
        return lead_id

    async def send_service_text(self, kind: TextKind, to_number: str, from_number: str, sender: Sender,
                                lead: Lead | None, campaign: Campaign | None) -> str | None:
        """HELP's answer or a revocation's confirmation: gated (channel sms, its kind), queued
        ahead of nothing but its sender's rate; the message id, or None when blocked."""
        if not self.accepting:
            return None
        body = help_reply(sender) if kind is TextKind.HELP_REPLY else opt_out_confirmation(sender)
        gate_request = self._gate_request(to_number, lead, kind)
        decision = await decide_at_dial(self.services.gate, gate_request, self.policy(campaign, gate_request), log)
        if decision is None or not decision.allowed:
            log.warning("service_text_blocked", kind=kind.value, reasons=[c.value for c in decision.codes] if decision else None)
            return None
        message_id = new_id(Prefix.TEXT)
        now = time.time()
        text = TextRequest(
            message_id=message_id, kind=kind, to_number=to_number, from_number=from_number, body=body,
            decision_id=decision.decision_id, decided_at=now, transport=self.transport.name,
            lead_id=lead.lead_id if lead else None, campaign_id=campaign.campaign_id if campaign else None,
            recheck_after=self.settings.confirmation_max_wait, max_wait=self.settings.confirmation_max_wait,
        )
        self._start(text, gate_request, campaign, now)
        return message_id

    # -- inbound -----------------------------------------------------------------------------------
    async def receipt(self, receipt: DeliveryReceipt) -> None:
        await self.services.records.put(RecordKind.MESSAGE_RECEIPT, {
            "receipt_id": new_id(Prefix.TEXT_RECEIPT), "message_id": None,
            "provider_message_id": receipt.provider_message_id, "status": receipt.status.value,
            "error": receipt.error, "received_at": receipt.received_at,
        })
        log.info("text_receipt", provider_message_id=receipt.provider_message_id, status=receipt.status.value)

    async def receive(self, text: InboundText) -> str:
        """Handle one text a phone sent us; its message id.

        Nothing here may lose a revocation: the CRM's records are put in the outbox (durable on
        local disk, delivered when PostgreSQL answers) before anything that needs PostgreSQL or
        Redis to answer, and a read that fails only costs context (the lead, the campaign).
        """
        services = self.services
        number = parse_number(text.from_number)
        phone = number.e164 or text.from_number
        to_number = parse_number(text.to_number).e164 or text.to_number
        lead: Lead | None = None
        looked_up = False  # the CRM answered (an unknown number gets a lead; an unanswered read does not)
        if number.e164:
            try:
                lead, looked_up = await self._lead_of(phone), True
            except Exception as error:
                log.warning("texting_read_failed", what="lead", error=repr(error))
        campaign = await self._quietly(self._campaign_of(phone, to_number), "campaign")
        now = time.time()
        asked = plan(text.body, InboundFacts(False, None, False), now)
        message_id = new_id(Prefix.TEXT)
        lead_id = lead.lead_id if lead else (await self._adhoc_lead(phone, "inbound_text") if looked_up else None)
        size = measure(text.body)
        record = {
            "message_id": message_id, "version": 1, "direction": Direction.INBOUND.value,
            "kind": asked.keyword.value if asked.keyword else "reply", "lead_id": lead_id,
            "agent_id": lead.owner_agent_id if lead else None, "campaign_id": campaign.campaign_id if campaign else None,
            "from_number": phone, "to_number": to_number, "body": text.body, "encoding": size.encoding.value,
            "segments": size.segments, "template_id": None, "transport": self.transport.name,
            "provider_message_id": text.provider_message_id, "status": "received", "status_detail": None,
            "compliance_decision_id": None, "requested_by": None, "created_at": text.received_at, "sent_at": None,
        }
        bound = log.bind(message_id=message_id, lead_id=lead_id, keyword=asked.keyword)
        confirmation_claimed = False
        help_answered_at: float | None = now
        standing_by_text = False
        if asked.opt_out and number.e164:
            # 47 CFR 64.1200(a)(10): the revocation is honoured at once, on every channel: the
            # CRM's records durable first, then the Redis list every gate reads.
            opt_out = {"opt_out_id": new_id(Prefix.OPT_OUT), "phone": phone, "source": "sms_keyword",
                       "lead_id": lead_id, "call_id": None, "created_at": datetime.now(UTC)}
            await services.records.put_many([(RecordKind.MESSAGE, record), (RecordKind.OPT_OUT, opt_out),
                                             *self._revoked_consents(lead, phone)])
            await self._block(phone)
            confirmation_claimed = await self._claim(text_confirmation_key(self.redis_prefix, phone), now)
        else:
            await services.records.put(RecordKind.MESSAGE, record)
            if asked.answer_help:
                claimed = await self._claim(text_help_key(self.redis_prefix, phone), now, expire=HELP_GUARD_SECONDS)
                help_answered_at = None if claimed else now
            elif asked.keyword is not None and number.e164:
                standing = await self._quietly(services.store.opt_out_standing(phone), "opt-out standing")
                standing_by_text = standing is not None and standing.by_text_only
        decided = plan(text.body, InboundFacts(confirmation_claimed, help_answered_at, standing_by_text), now)
        if decided.opt_out:
            bound.info("text_opt_out", confirmation=decided.confirm_opt_out)
        if decided.opt_in:
            await self._opt_in(phone, lead, lead_id, message_id)
            bound.info("text_opt_in")
        sender = self.sender_for(campaign)
        if decided.confirm_opt_out:
            await self.send_service_text(TextKind.OPT_OUT_CONFIRMATION, phone, to_number, sender, lead, campaign)
        if decided.answer_help:
            await self.send_service_text(TextKind.HELP_REPLY, phone, to_number, sender, lead, campaign)
        agent_id = await self._quietly(self._agent_for(lead, phone, to_number), "agent")
        if agent_id is not None:
            services.agent_events.publish(agent_id, {
                "type": "text_received", "message_id": message_id, "from": phone, "to": to_number,
                "body": text.body, "keyword": decided.keyword.value if decided.keyword else None,
                "received_at": text.received_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "lead": {"lead_id": lead_id, "name": lead_name(lead, phone),
                         "pipeline_stage": lead.pipeline_stage.value if lead else None},
            })
        for listener in self.inbound_listeners:
            try:
                listener(text, decided, lead_id)
            except Exception:
                log.exception("inbound_listener_failed", message_id=message_id)
        return message_id

    async def _quietly(self, read: Awaitable[T], what: str) -> T | None:
        """A read that may fail (PostgreSQL down): the text is handled without it."""
        try:
            return await read
        except Exception as error:
            log.warning("texting_read_failed", what=what, error=repr(error))
            return None

    async def _lead_of(self, phone: str) -> Lead | None:
        leads = await self.services.store.find_leads_by_phone(phone)
        return leads[0] if leads else None

    async def _block(self, phone: str) -> None:
        """The number on the opt-out list every gate reads; tried again while Redis fails (the
        CRM's record is already durable)."""
        for attempt in range(BLOCK_ATTEMPTS):
            try:
                await block(self.services.dnc, phone)
                return
            except Exception as error:
                log.error("texting_opt_out_redis_failed", attempt=attempt + 1, error=repr(error))
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt))

    async def _claim(self, key: str, now: float, *, expire: float | None = None) -> bool:
        """Take a once-only Redis key (SET NX); False when another took it or Redis failed."""
        try:
            return bool(await self.services.dnc.redis.set(key, str(now), nx=True,
                                                          ex=int(expire) if expire is not None else None))
        except Exception as error:
            log.error("texting_claim_failed", key=key, error=repr(error))
            return False

    def _revoked_consents(self, lead: Lead | None, phone: str) -> list[tuple[str, dict[str, object]]]:
        """The lead's written consents for this number, marked revoked now (47 CFR 64.1200(a)(10))."""
        if lead is None:
            return []
        now = datetime.now(UTC)
        consents = [
            {"consent_id": c.consent_id, "kind": c.kind, "phone": c.phone, "obtained_at": c.obtained_at,
             "source": c.source, "evidence_ref": c.evidence_ref, "expires_at": c.expires_at, "revoked_at": now}
            for c in lead.consents if c.revoked_at is None and (c.phone is None or c.phone == phone)
        ]
        return [(RecordKind.LEAD_UPSERT, {"lead_id": lead.lead_id, "consents": consents})] if consents else []

    async def _opt_in(self, phone: str, lead: Lead | None, lead_id: str | None, message_id: str) -> None:
        """START after a texted revocation: the consumer's new consent to texts, kept as
        evidence (durably, first); then the number leaves the opt-out list. Written consent for
        marketing is not restored: a keyword is not a signed agreement (47 CFR 64.1200(f)(9))."""
        now = datetime.now(UTC)
        records: list[tuple[str, dict[str, object]]] = [(RecordKind.OPT_IN, {
            "opt_in_id": new_id(Prefix.OPT_IN), "phone": phone, "source": "sms_keyword", "lead_id": lead_id,
            "message_id": message_id, "created_at": now})]
        if lead_id is not None:
            records.append((RecordKind.LEAD_UPSERT, {"lead_id": lead_id, "consents": [{
                "consent_id": new_id(Prefix.CONSENT), "kind": "sms_opt_in", "phone": phone, "obtained_at": now,
                "source": "sms_keyword", "evidence_ref": f"message:{message_id}"}]}))
        await self.services.records.put_many(records)
        await self.services.dnc.set_membership(OPTOUT, parse_number(phone), False)
        await self.services.dnc.redis.delete(text_confirmation_key(self.redis_prefix, phone))

    async def _campaign_of(self, phone: str, to_number: str) -> Campaign | None:
        """The campaign of the conversation: that of our last text to this number from `to_number`."""
        if (phone, to_number) in self._conversations:
            campaign_id = self._conversations[(phone, to_number)][0]
            return None if campaign_id is None else await self.services.store.get_campaign(campaign_id)
        last = await self.services.store.latest_message(direction="outbound", lead_number=phone,
                                                        agency_number=to_number)
        if last is None or last.campaign_id is None:
            return None
        return await self.services.store.get_campaign(last.campaign_id)

    async def _agent_for(self, lead: Lead | None, phone: str, to_number: str) -> str | None:
        if lead is not None and lead.owner_agent_id:
            return lead.owner_agent_id
        if (phone, to_number) in self._conversations:
            return self._conversations[(phone, to_number)][1]
        last = await self.services.store.latest_message(direction="outbound", lead_number=phone,
                                                        agency_number=to_number)
        return last.agent_id if last is not None else None



def texting_for(services: CallServices, settings: Settings, **overrides: object) -> TextingRuntime:
    """The texting slice with the transport the settings name (`DIALER_TEXTING_TRANSPORT`)."""
    transport: TextTransport
    if settings.texting_transport == "http":
        transport = ProviderTextTransport(ProviderConfig(
            base_url=settings.texting_http_url, account=settings.texting_http_account,
            token=settings.texting_http_token, webhook_base_url=settings.texting_webhook_url))
    else:
        transport = SipTextTransport(services.ari, settings.trunk_endpoint)
    values: dict[str, object] = {"default_sender": settings.caller_id, "agency_name": settings.agency_name,
                                 "segments_per_second": settings.texting_rate, **overrides}
    return TextingRuntime(services, transport, TextingSettings(**values))  # type: ignore[arg-type]
