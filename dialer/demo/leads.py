"""The demo campaign's leads, and the instant the gate's clock starts at (pure: no IO).

Leads are numbers of the simulated public network (`asterisk-config/README.md`): real area
codes and ZIP codes per state, so the compliance gate places them in their real time zones,
and the last four digits `B R TT` choose what the called party does (1 person, 2 machine,
3 busy, 4 no answer, 5 unallocated; exchange 999 is a person who presses 9). A few people are
also texted before the campaign: their exchange 77P chooses how they answer a text (770 STOP,
773 HELP, 774 yes, 775 an emoji), and they gave written consent on a web form.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from compliance_rules.model import ContactRequest, ListVersions, NumberFacts
from compliance_rules.numbers import parse_number
from compliance_rules.policy import CampaignPolicy
from compliance_rules.rules import decide, locate
from compliance_rules.ruleset import RuleBook


@dataclass(frozen=True)
class DemoState:
    """One state the demo's leads live in: a real area code and ZIP code (hence time zone)."""

    state: str
    area_code: str
    zip_code: str
    city: str


# Eastern to Hawaii, so some zone is inside its calling window for most of the day.
DEMO_STATES: tuple[DemoState, ...] = (
    DemoState("NY", "212", "10001", "New York"),
    DemoState("GA", "404", "30303", "Atlanta"),
    DemoState("OH", "614", "43215", "Columbus"),
    DemoState("IL", "312", "60601", "Chicago"),
    DemoState("TX", "214", "75201", "Dallas"),
    DemoState("MN", "612", "55401", "Minneapolis"),
    DemoState("CO", "303", "80202", "Denver"),
    DemoState("AZ", "602", "85004", "Phoenix"),
    DemoState("CA", "415", "94103", "San Francisco"),
    DemoState("WA", "206", "98101", "Seattle"),
    DemoState("AK", "907", "99501", "Anchorage"),
    DemoState("HI", "808", "96813", "Honolulu"),
)


class Behaviour(StrEnum):
    """What the simulated called party does (the number's last four digits choose it)."""

    PERSON = "person"
    MACHINE = "machine"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    UNALLOCATED = "unallocated"
    PRESSES_9 = "presses_9"


class TextReply(StrEnum):
    """How a texted demo lead answers (the exchange 77P of its number chooses it)."""

    STOP = "stop"
    HELP = "help"
    YES = "yes"
    EMOJI = "emoji"


TEXTING_EXCHANGES: dict[TextReply, str] = {TextReply.STOP: "770", TextReply.HELP: "773", TextReply.YES: "774",
                                           TextReply.EMOJI: "775"}
TEXTED_REPLIES = (TextReply.STOP, TextReply.YES, TextReply.EMOJI, TextReply.HELP)
CONSENT_AT = "2026-01-05T15:00:00+00:00"  # the demo web form's date


class DncList(StrEnum):
    """The list a demo lead is put on before the run (the gate must never let it be dialed)."""

    INTERNAL = "internal"
    FEDERAL = "federal"


# A realistic mix for an aged insurance lead list, in parts of 100.
MIX: tuple[tuple[Behaviour, int], ...] = (
    (Behaviour.PERSON, 46),
    (Behaviour.MACHINE, 20),
    (Behaviour.BUSY, 9),
    (Behaviour.NO_ANSWER, 9),
    (Behaviour.UNALLOCATED, 6),
    (Behaviour.PRESSES_9, 3),
)
DNC_SHARE = 0.07  # of the leads, on the internal or the federal list

FIRST_NAMES = ("Ann", "Bob", "Carmen", "Dale", "Elena", "Frank", "Grace", "Hector", "Irene", "James", "Kim",
               "Luis", "Maria", "Ned", "Olga", "Paul", "Rosa", "Sam", "Tina", "Walt")
LAST_NAMES = ("Adams", "Baker", "Chen", "Diaz", "Evans", "Foster", "Garcia", "Hughes", "Ito", "Jones", "Kowalski",
              "Lopez", "Miller", "Nguyen", "Owens", "Patel", "Reyes", "Smith", "Tanaka", "Young")


@dataclass(frozen=True)
class DemoLead:
    """One demo lead: where it lives, what its number does, and any DNC list it is on."""

    index: int
    phone: str
    first_name: str
    last_name: str
    home: DemoState
    behaviour: Behaviour
    dnc: DncList | None = None
    texts: TextReply | None = None  # texted before the campaign, answering this way

    def lead_fields(self, lead_id: str) -> dict[str, object]:
        """The `lead_upsert` fields of lead `lead_id`; a texted lead's written consent with them.

        The consent's id is the lead's: a consent record belongs to the lead that first stored
        it (an upsert keeps its lead), so an id shared by every run's lead of the same number
        would leave each later run's texter without consent (consent_missing)."""
        fields: dict[str, object] = {
            "lead_id": lead_id, "first_name": self.first_name, "last_name": self.last_name, "phones": [self.phone],
            "state": self.home.state, "zip": self.home.zip_code, "city": self.home.city, "source": "demo"}
        if self.texts is not None:
            fields["consents"] = [{"consent_id": f"{lead_id}-pewc", "kind": "pewc", "phone": self.phone,
                                   "obtained_at": CONSENT_AT, "source": "web_form",
                                   "evidence_ref": "demo web form (TCPA disclosure accepted)"}]
        return fields


def _last_four(behaviour: Behaviour, rng: random.Random) -> str:
    ring = rng.randint(1, 4)
    match behaviour:
        case Behaviour.PERSON:
            # Short, compressed conversations: the person hangs up 8-30 s after answering.
            return f"1{ring}{rng.randint(8, 30):02d}"
        case Behaviour.MACHINE:
            return f"2{ring}05"
        case Behaviour.BUSY:
            return f"3{ring}00"
        case Behaviour.NO_ANSWER:
            return "4000"
        case Behaviour.UNALLOCATED:
            return f"5{ring}00"
        case Behaviour.PRESSES_9:
            return f"1{ring}06"  # in exchange 999: presses 9 six seconds after answering


def demo_leads(count: int, seed: int = 2026, states: Sequence[DemoState] = DEMO_STATES) -> list[DemoLead]:
    """`count` distinct leads spread evenly over `states`, with the behaviour mix of `MIX` and
    exactly `DNC_SHARE` of them (rounded) on a DNC list (only people and machines, so a dial would show)."""
    if count < len(states):
        raise ValueError(f"the demo needs at least {len(states)} leads, one per state")
    rng = random.Random(seed)
    weights = [weight for _, weight in MIX]
    behaviours = [behaviour for behaviour, _ in MIX]
    used: set[str] = set()
    leads: list[DemoLead] = []
    # 77X: the simulated phones that answer texts by rule are kept for `with_texters`.
    exchanges = [n for n in range(201, 990) if n not in (555, 911, 999) and n % 100 != 11 and n // 10 != 77]
    for index in range(count):
        home = states[index % len(states)]
        behaviour = rng.choices(behaviours, weights)[0]
        while True:
            exchange = "999" if behaviour is Behaviour.PRESSES_9 else str(rng.choice(exchanges))
            phone = f"+1{home.area_code}{exchange}{_last_four(behaviour, rng)}"
            if phone not in used and parse_number(phone).ok:
                break
        used.add(phone)
        leads.append(DemoLead(index, phone, rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES), home, behaviour))
    # Exactly DNC_SHARE of the leads (the README's 7 %), not a draw that lands anywhere near it.
    answering = [lead.index for lead in leads if lead.behaviour in (Behaviour.PERSON, Behaviour.MACHINE)]
    on_lists = rng.sample(answering, min(len(answering), round(count * DNC_SHARE)))
    for index in on_lists:
        leads[index] = replace(leads[index], dnc=rng.choice((DncList.INTERNAL, DncList.FEDERAL)))
    return leads


def window_open(lead: DemoLead, at: datetime, book: RuleBook, policy: CampaignPolicy | None = None) -> bool:
    """Would the gate's calling-window and holiday rules let `lead` be dialed at `at`? (The
    pure rules with no list hits and fresh lists: only time and place decide.)"""
    request = ContactRequest(phone=lead.phone, zip_code=lead.home.zip_code, state=lead.home.state)
    fresh = {"federal": at.date().isoformat()} | {f"state:{s}": at.date().isoformat() for s in book.state_dnc_lists}
    decision = decide(request, locate(request), NumberFacts(), ListVersions(fresh), policy or CampaignPolicy(),
                      book, at, "demo-preview")
    return decision.allowed


def _texting_phone(lead: DemoLead, reply: TextReply) -> str:
    return f"+1{lead.home.area_code}{TEXTING_EXCHANGES[reply]}{lead.phone[-4:]}"


def with_texters(leads: Sequence[DemoLead], at: datetime, book: RuleBook,
                 replies: Sequence[TextReply] = TEXTED_REPLIES,
                 opted_out: Collection[str] = frozenset()) -> list[DemoLead]:
    """`leads` with one person per reply (inside their window at `at`, on no DNC list) moved to
    the exchange that answers texts that way, and given written consent, to be texted first.

    `opted_out`: numbers opted out in earlier runs (opt-outs are kept, and the gate honours
    them): no texter is moved to one, so each run's texts reach their four people."""
    candidates = iter(lead for lead in leads if lead.behaviour is Behaviour.PERSON and lead.dnc is None
                      and window_open(lead, at, book))
    moved: dict[int, TextReply] = {}
    for reply in replies:
        lead = next((lead for lead in candidates if _texting_phone(lead, reply) not in opted_out), None)
        if lead is None:
            break
        moved[lead.index] = reply
    return [
        replace(lead, phone=_texting_phone(lead, moved[lead.index]), texts=moved[lead.index])
        if lead.index in moved else lead
        for lead in leads
    ]


def dialable_at(leads: Iterable[DemoLead], at: datetime, book: RuleBook) -> list[DemoLead]:
    """The leads not on a DNC list whose calling window is open at `at`."""
    return [lead for lead in leads if lead.dnc is None and window_open(lead, at, book)]


def open_states(leads: Iterable[DemoLead], at: datetime, book: RuleBook) -> list[str]:
    """States (in `DEMO_STATES` order) with at least one lead inside its window at `at`."""
    states = Counter(lead.home.state for lead in leads if window_open(lead, at, book))
    return [state.state for state in DEMO_STATES if states[state.state]]


def gate_start(leads: Sequence[DemoLead], now: datetime, book: RuleBook, minimum: int,
               step: timedelta = timedelta(minutes=15)) -> datetime:
    """The instant the gate's clock should start at: `now` when at least `minimum` leads are
    dialable, else the first later quarter hour (within a day) when they are.

    No US time zone is inside 8 a.m.-9 p.m. from 07:00 to 12:00/13:00 UTC (Hawaii closes at
    07:00 UTC, New York opens at 12:00 or 13:00), so at those hours a demo on the real clock
    would dial nobody."""
    if len(dialable_at(leads, now, book)) >= minimum:
        return now
    at = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    for _ in range(int(timedelta(days=1) / step)):
        at += step
        if len(dialable_at(leads, at, book)) >= minimum:
            return at
    return now
