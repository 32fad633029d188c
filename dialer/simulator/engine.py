"""A discrete-event call-center simulator that drives any `Pacer`.

Speed matters (the benchmark runs tens of millions of dials), so the hot loop uses plain
lists, dicts and a `heapq` of tuples rather than objects per call, and each dial's fate
(person or not, when AMD decides, its deadline) is worked out with numpy for a block of
dials at once. Randomness is drawn up front per (seed, replication, day) in blocks: the
k-th dial of a day gets the same outcome, ring time, greeting, talk and wrap time under
every policy, and agents get the same log-in times and breaks, so policy comparisons are
paired (common random numbers).

Timeline of a live answer: answer at `t0 + ring`; the greeting lasts `greeting`; AMD
declares a person `amd` seconds after the greeting ends; the regulatory deadline is
2 s after the greeting (47 CFR 64.1200(a)(7), 16 CFR 310.4(b)(4)(iii)), or, when the
scenario sets `deadline_slack_seconds`, that long after AMD's decision. A person not
bridged by then is abandoned, even if an agent picks them up later. A waiting call
gives up after `drop_call_seconds` (VICIdial's DROP: safe-harbor message).

The pacer is asked every second (`TICK_SECONDS`), as the runtime does, except when a
pacer declares `decides_on_state_only` (its answer depends on the snapshot's counts
alone) and nothing happened since its last answer was placed in full: it would answer 0
again, so the call is skipped, and a simulation running alone jumps to the next event's
second (the results are identical; tests compare both ways). A pacer may also take a
tick's DIAL_PLACED events as one call, `observe_placed(now, count)`, and DIAL_ENDED as
`observe_dial_ended(seconds)`, where it has them. A pacer that answers from the
snapshot's counts alone (`decide_counts`) is asked with those, and no snapshot is built;
if it also ignores DIAL_ENDED, a line that needs no agent is a bare end time in
`line_ends` rather than an event (it is only counted as ringing until then).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from dialer.pacing.types import (
    ABANDON_WINDOW_DAYS,
    AbandonTally,
    DialOutcome,
    EventKind,
    Pacer,
    PacingEvent,
    PacingSnapshot,
)
from dialer.simulator.scenario import Scenario

SECONDS_PER_DAY = 86400.0
TICK_SECONDS = 1.0
BLOCK = 4096
# Seconds after the greeting within which a person must reach an agent.
ABANDON_DEADLINE_SECONDS = 2.0

# Heap event kinds.
_LOGIN, _LOGOUT, _BREAK, _BREAK_END, _LINE_END, _HUMAN, _HOLD, _TALK_END, _WRAP_END, _AMD_FP = range(10)
# Agent states.
_OFF, _READY, _TALK, _WRAP, _PAUSE = range(5)
# Dial plans.
_PLAN_HUMAN, _PLAN_MACHINE_AS_HUMAN, _PLAN_HUMAN_AS_MACHINE, _PLAN_OTHER = range(4)
# How a dial that reaches no agent ends (index into _OUTCOMES).
_OUTCOMES = (DialOutcome.MACHINE, DialOutcome.BUSY, DialOutcome.UNALLOCATED, DialOutcome.NO_ANSWER)

DAILY_COUNTERS = (
    "dials",
    "live_answers",  # people who answered (truth), the regulatory denominator
    "abandoned",  # people not bridged within 2 s of the greeting (regulatory numerator)
    "bridged_late",  # people bridged, but later than 2 s after the greeting
    "connects",  # people bridged to an agent
    "human_declared",  # calls AMD declared human (VICIdial's human_answered)
    "vici_drops",  # declared-human calls that hit drop_call_seconds (VICIdial's DROP)
    "amd_false_positive",  # people AMD hung up on as machines (abandoned, invisible to the runtime)
    "observed_abandons",  # abandons the runtime can see (fed to the pacer's 30-day tally)
    "idle_seconds",
    "talk_seconds",  # talking with people
    "machine_talk_seconds",  # agents on machines AMD took for people
    "wrap_seconds",
    "pause_seconds",
    "logged_in_seconds",
)
(
    _DIALS, _LIVE, _ABANDONED, _LATE, _CONNECTS, _DECLARED, _DROPS, _AMD_FP_COUNT, _OBSERVED,
    _IDLE_S, _TALK_S, _MACHINE_TALK_S, _WRAP_S, _PAUSE_S, _LOGGED_S,
) = range(len(DAILY_COUNTERS))  # fmt: skip


class OutcomePeekingPacer(Pacer, Protocol):
    """A pacer allowed to see the next dials' outcomes (only the outcome oracle)."""

    def bind_peek(self, peek: Callable[[int], tuple[bool, float] | None]) -> None: ...


@dataclass
class ReplicationResult:
    """Per-day counters of one replication (index = day)."""

    policy: str
    replication: int
    daily: dict[str, list[float]] = field(default_factory=dict)

    def total(self, key: str) -> float:
        return float(sum(self.daily[key]))


# Draws kept only as numpy blocks (the loop reads the plans worked out from them).
_RAW_DRAWS = ("u_outcome", "ring", "greeting", "amd", "amd_machine", "u_error", "busy", "unallocated")


class _DayStream:
    """Pre-drawn per-dial randomness for one day, extended in fixed blocks (same for every policy).

    Besides the raw draws, each block carries every dial's plan, worked out with numpy:
    `plan` (person, machine taken for a person, person taken for a machine, or a line
    that needs no agent), `offset` (seconds from the dial to AMD's decision or the line's
    end), `deadline` (seconds from the dial to the 2-s deadline, people only) and `ends`
    (how a line needing no agent ends).
    """

    def __init__(self, scenario: Scenario, rng: np.random.Generator) -> None:
        self.s = scenario
        self.rng = rng
        self.size = 0
        # The raw draws the loop does not read (the plans carry them), kept as numpy blocks;
        # `raw(name)` gives them as a list (tests read them).
        self._raw: dict[str, list[FloatArray]] = {name: [] for name in _RAW_DRAWS}
        self.talk: list[float] = []
        self.wrap: list[float] = []
        self.machine_talk: list[float] = []
        self.plan: list[int] = []
        self.offset: list[float] = []
        self.deadline: list[float] = []
        self.ends: list[int] = []
        self.needs_agent: list[bool] = []  # declared a person (truly or not): the oracle's peek

    def raw(self, name: str) -> list[float]:
        """One of the raw draws (`_RAW_DRAWS`) of every dial drawn so far, as floats."""
        return [x for block in self._raw[name] for x in block.tolist()]

    def ensure(self, k: int) -> None:
        while k >= self.size:
            self._extend()

    def _extend(self) -> None:
        s, rng = self.s, self.rng
        # The draw order is part of the common random numbers: never reorder it.
        u = rng.random(BLOCK)
        ring = s.ring_seconds.sample(rng, BLOCK)
        greeting = s.greeting_seconds.sample(rng, BLOCK)
        amd = s.amd_seconds.sample(rng, BLOCK)
        amd_machine = s.amd_machine_seconds.sample(rng, BLOCK)
        u_error = rng.random(BLOCK)
        talk = s.talk_seconds.sample(rng, BLOCK)
        wrap = s.wrap_seconds.sample(rng, BLOCK)
        machine_talk = s.machine_talk_seconds.sample(rng, BLOCK)
        busy = s.busy_seconds.sample(rng, BLOCK)
        unallocated = s.unallocated_seconds.sample(rng, BLOCK)
        plan, offset, deadline, ends = _plans(s, u, ring, greeting, amd, amd_machine, u_error, busy, unallocated)
        raw = self._raw
        for name, values in zip(_RAW_DRAWS, (u, ring, greeting, amd, amd_machine, u_error, busy, unallocated),
                                strict=True):  # fmt: skip
            raw[name].append(values)
        self.talk += talk.tolist()
        self.wrap += wrap.tolist()
        self.machine_talk += machine_talk.tolist()
        self.plan += plan.tolist()
        self.offset += offset.tolist()
        self.deadline += deadline.tolist()
        self.ends += ends.tolist()
        self.needs_agent += ((plan == _PLAN_HUMAN) | (plan == _PLAN_MACHINE_AS_HUMAN)).tolist()
        self.size += BLOCK


FloatArray = np.ndarray[tuple[int], np.dtype[np.float64]]
IntArray = np.ndarray[tuple[int], np.dtype[np.int64]]


def _plans(
    s: Scenario,
    u: FloatArray,
    ring: FloatArray,
    greeting: FloatArray,
    amd: FloatArray,
    amd_machine: FloatArray,
    u_error: FloatArray,
    busy: FloatArray,
    unallocated: FloatArray,
) -> tuple[IntArray, FloatArray, FloatArray, IntArray]:
    """Each dial's plan, in the same float arithmetic as one dial at a time would use."""
    timeout = s.ring_timeout_seconds
    slack = s.deadline_slack_seconds
    u_machine = u - s.p_live
    u_busy = u_machine - s.p_machine
    u_unallocated = u_busy - s.p_busy
    live = u < s.p_live
    machine = ~live & (u_machine < s.p_machine)
    is_busy = ~live & ~machine & (u_busy < s.p_busy)
    is_unallocated = ~live & ~machine & ~is_busy & (u_unallocated < s.p_unallocated)
    answered_in_time = ring <= timeout
    greeting_end = ring + greeting
    decided_human = greeting_end + amd
    decided_machine = ring + amd_machine
    person = live & answered_in_time
    machine_answered = machine & answered_in_time
    human_as_machine = person & (u_error < s.amd_human_error)
    machine_as_human = machine_answered & (u_error < s.amd_machine_error)

    plan = np.full(u.shape, _PLAN_OTHER, dtype=np.int64)
    plan[person] = _PLAN_HUMAN
    plan[human_as_machine] = _PLAN_HUMAN_AS_MACHINE
    plan[machine_as_human] = _PLAN_MACHINE_AS_HUMAN
    offset = np.full(u.shape, timeout)
    offset[person] = decided_human[person]
    offset[machine_answered] = decided_machine[machine_answered]
    offset[is_busy] = busy[is_busy]
    offset[is_unallocated] = unallocated[is_unallocated]
    deadline = np.zeros(u.shape)
    if slack is None:
        deadline[person] = greeting_end[person] + ABANDON_DEADLINE_SECONDS
        # The runtime will think the greeting ended 1 s before it declared a person.
        deadline[machine_as_human] = decided_machine[machine_as_human] + 1.0
    else:
        deadline[person] = decided_human[person] + slack
        deadline[machine_as_human] = decided_machine[machine_as_human] + slack
    # Classified with the cumulative sums, as the runtime's outcome would be read.
    to_machine = s.p_live + s.p_machine
    to_busy = to_machine + s.p_busy
    to_unallocated = to_busy + s.p_unallocated
    ends = np.full(u.shape, 3, dtype=np.int64)  # no answer
    ends[(u < to_machine) & answered_in_time] = 0
    ends[(u >= to_machine) & (u < to_busy)] = 1
    ends[(u >= to_busy) & (u < to_unallocated)] = 2
    return plan, offset, deadline, ends


def _rng(seed: int, replication: int, day: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, replication, day, stream]))


class Simulation:
    """One replication of a scenario under one pacer. Call `run()` once.

    `skip_idle_decisions=False` asks a `decides_on_state_only` pacer every second anyway
    (the tests use it to show that skipping changes nothing).
    """

    def __init__(
        self,
        scenario: Scenario,
        pacer: Pacer,
        seed: int = 1,
        replication: int = 0,
        *,
        skip_idle_decisions: bool = True,
    ) -> None:
        self.s = scenario
        self.pacer = pacer
        self.seed = seed
        self.replication = replication
        self.result = ReplicationResult(
            policy=pacer.name,
            replication=replication,
            daily={key: [0.0] * scenario.days for key in DAILY_COUNTERS},
        )
        self.leads_used = 0
        self.event_log: list[tuple[float, str, int]] | None = None  # (time, what, id) when tracing
        n = scenario.agents
        self.state = [_OFF] * n
        self.since = [0.0] * n
        self.login_at = [0.0] * n
        self.on_machine = [False] * n
        self.pending_break = [0.0] * n
        self.pending_logout = [False] * n
        self.agent_call = [-1] * n
        self.day = 0
        self.today = [0.0] * len(DAILY_COUNTERS)
        self.stream = _DayStream(scenario, _rng(seed, replication, 0, 1))
        self.next_dial = 0
        self.heap: list[tuple[float, int, int, int]] = []
        self.seq = 0
        self.ready: dict[int, float] = {}
        self.talking: dict[int, float] = {}
        self.wrapping: dict[int, float] = {}
        self.paused = 0
        self.ringing: dict[int, float] = {}
        self.waiting: dict[int, float] = {}
        self.deadline: dict[int, float] = {}
        self.is_person: dict[int, bool] = {}
        self.active_lines = 0
        self.cps_tokens = 0.0
        self.prior_answers = 0.0
        self.prior_abandons = 0.0
        self.break_length = 0.0
        self.decisions = 0  # calls to the pacer's decide()
        self._observe_pacer = pacer.observe
        # Event kinds the pacer declares it ignores are not sent (`Pacer.observed_kinds`).
        listens: frozenset[EventKind] = frozenset(getattr(pacer, "observed_kinds", EventKind))
        self._sends_placed = EventKind.DIAL_PLACED in listens
        self._sends_ended = EventKind.DIAL_ENDED in listens
        self._sends_human = EventKind.HUMAN_ANSWERED in listens
        # Looked up once: an enum's hash is a Python call, and these are asked per event.
        self._sends_abandoned = EventKind.CALL_ABANDONED in listens
        self._sends_bridged = EventKind.CALL_BRIDGED in listens
        self._sends_dropped = EventKind.CALL_DROPPED in listens
        self._sends_talk_ended = EventKind.TALK_ENDED in listens
        self._sends_wrap_ended = EventKind.WRAP_ENDED in listens
        # A pacer may take a tick's DIAL_PLACED events as one count (`observe_placed(now, n)`).
        placed_many = getattr(pacer, "observe_placed", None)
        self._placed_many: Callable[[float, int], None] | None = placed_many if callable(placed_many) else None
        # A pacer may take DIAL_ENDED as `observe_dial_ended(seconds)` when it uses only the
        # seconds from the dial (most events of a low live-answer campaign are these).
        ended = getattr(pacer, "observe_dial_ended", None)
        self._ended_fast: Callable[[float], None] | None = ended if callable(ended) and self._sends_ended else None
        self._state_only = skip_idle_decisions and bool(getattr(pacer, "decides_on_state_only", False))
        # Something happened since the pacer last answered (or its answer was capped).
        self._changed = True
        self._snapshot: PacingSnapshot | None = None
        self._free = 0  # free lines at the last tick the pacer was asked
        self._lead_list_size = scenario.lead_list_size
        # Ends of lines that need no agent, kept apart from the events (`_lines_apart`).
        self.line_ends: list[float] = []
        self._lines_apart = False
        bind = getattr(pacer, "bind_peek", None)
        if callable(bind):
            bind(self._peek)

    # -- randomness -------------------------------------------------------------------

    def _plan(self, k: int) -> tuple[int, float, float]:
        """(plan, seconds to the decision or line end, deadline offset from dial) for dial k."""
        st = self.stream
        st.ensure(k)
        return st.plan[k], st.offset[k], st.deadline[k]

    def _peek(self, ahead: int) -> tuple[bool, float] | None:
        """For the oracle: will the `ahead`-th next dial need an agent, and after how long?"""
        leads = self._lead_list_size
        if leads and self.leads_used + ahead >= leads:
            return None
        k = self.next_dial + ahead
        st = self.stream
        if k >= st.size:
            st.ensure(k)
        return st.needs_agent[k], st.offset[k]

    # -- bookkeeping --------------------------------------------------------------------

    def _push(self, time: float, kind: int, ident: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (time, self.seq, kind, ident))

    def _set_agent(self, a: int, new: int, now: float) -> None:
        old = self.state[a]
        elapsed = now - self.since[a]
        today = self.today
        if old == _READY:
            today[_IDLE_S] += elapsed
            del self.ready[a]
        elif old == _TALK:
            today[_MACHINE_TALK_S if self.on_machine[a] else _TALK_S] += elapsed
            del self.talking[a]
        elif old == _WRAP:
            today[_WRAP_S] += elapsed
            del self.wrapping[a]
        elif old == _PAUSE:
            today[_PAUSE_S] += elapsed
            self.paused -= 1
        self.state[a] = new
        self.since[a] = now
        if new == _READY:
            self.ready[a] = now
        elif new == _TALK:
            self.talking[a] = now
        elif new == _WRAP:
            self.wrapping[a] = now
        elif new == _PAUSE:
            self.paused += 1

    # -- the call flow ------------------------------------------------------------------

    def _place(self, now: float) -> None:
        k = self.next_dial
        self.next_dial += 1
        self.leads_used += 1
        self.active_lines += 1
        self.today[_DIALS] += 1
        if self._sends_placed:
            self._observe_pacer(PacingEvent(EventKind.DIAL_PLACED, now))
        st = self.stream
        if k >= st.size:
            st.ensure(k)
        plan = st.plan[k]
        self.ringing[k] = now  # ringing lines by dial time: also the time each was placed
        if self.event_log is not None:
            self.event_log.append((now, "dial", k))
        self.seq += 1
        if plan == _PLAN_OTHER:
            heapq.heappush(self.heap, (now + st.offset[k], self.seq, _LINE_END, k))
        elif plan == _PLAN_HUMAN_AS_MACHINE:
            heapq.heappush(self.heap, (now + st.offset[k], self.seq, _AMD_FP, k))
        else:
            self.deadline[k] = now + st.deadline[k]
            self.is_person[k] = plan == _PLAN_HUMAN
            heapq.heappush(self.heap, (now + st.offset[k], self.seq, _HUMAN, k))

    def _place_many(self, now: float, n: int) -> None:
        """`n` calls of `_place` at one instant, untraced, with no DIAL_PLACED event each: the
        same dials, heap entries (times and sequence numbers) and counters, with the per-dial
        bookkeeping done once (the most frequent work of a low live-answer campaign)."""
        first = self.next_dial
        end = first + n
        self.next_dial = end
        self.leads_used += n
        self.active_lines += n
        self.today[_DIALS] += n  # whole numbers: exact, as n additions of 1 are
        st = self.stream
        if end - 1 >= st.size:
            st.ensure(end - 1)  # the same blocks, drawn in the same order, as dial by dial
        plans, offsets, deadlines = st.plan, st.offset, st.deadline
        ringing, heap, push = self.ringing, self.heap, heapq.heappush
        deadline, is_person = self.deadline, self.is_person
        seq = self.seq
        line_ends = self.line_ends if self._lines_apart else None
        for k in range(first, end):
            plan = plans[k]
            if plan == _PLAN_OTHER and line_ends is not None:
                push(line_ends, now + offsets[k])  # the line counts as ringing until then
                continue
            ringing[k] = now
            seq += 1
            if plan == _PLAN_OTHER:
                push(heap, (now + offsets[k], seq, _LINE_END, k))
            elif plan == _PLAN_HUMAN_AS_MACHINE:
                push(heap, (now + offsets[k], seq, _AMD_FP, k))
            else:
                deadline[k] = now + deadlines[k]
                is_person[k] = plan == _PLAN_HUMAN
                push(heap, (now + offsets[k], seq, _HUMAN, k))
        self.seq = seq

    def _bridge(self, k: int, a: int, now: float) -> None:
        decided = self.waiting.pop(k, None)
        wait = 0.0 if decided is None else now - decided
        person = self.is_person[k]
        today = self.today
        if person:
            today[_CONNECTS] += 1
        if now > self.deadline[k] + 1e-9:
            today[_OBSERVED] += 1
            if self._sends_abandoned:
                self._observe_pacer(PacingEvent(EventKind.CALL_ABANDONED, now))
            if person:
                today[_ABANDONED] += 1
                today[_LATE] += 1
        if self._sends_bridged:
            self._observe_pacer(PacingEvent(EventKind.CALL_BRIDGED, now, wait))
        st = self.stream
        duration = st.talk[k] if person else st.machine_talk[k]
        self.on_machine[a] = not person
        self._set_agent(a, _TALK, now)
        self.agent_call[a] = k
        self._push(now + duration, _TALK_END, a)
        if self.event_log is not None:
            self.event_log.append((now, "bridge", k))

    def _agent_ready(self, a: int, now: float) -> None:
        self._set_agent(a, _READY, now)
        if self.waiting:
            k = next(iter(self.waiting))
            self._bridge(k, a, now)

    def _handle(self, time: float, kind: int, ident: int) -> None:
        if kind == _LINE_END:
            k = ident
            placed = self.ringing.pop(k)
            self.active_lines -= 1
            if self._ended_fast is not None:
                self._ended_fast(time - placed)
            elif self._sends_ended:
                outcome = _OUTCOMES[self.stream.ends[k]]
                self._observe_pacer(PacingEvent(EventKind.DIAL_ENDED, time, time - placed, outcome))
            if self.event_log is not None:
                self.event_log.append((time, "end", k))
        elif kind == _HUMAN:
            k = ident
            placed = self.ringing.pop(k)
            today = self.today
            today[_DECLARED] += 1
            if self.is_person[k]:
                today[_LIVE] += 1
            if self._sends_human:
                self._observe_pacer(PacingEvent(EventKind.HUMAN_ANSWERED, time, time - placed))
            if self.event_log is not None:
                self.event_log.append((time, "human", k))
            if self.ready:
                self._bridge(k, next(iter(self.ready)), time)
            else:
                self.waiting[k] = time
                self._push(time + self.s.drop_call_seconds, _HOLD, k)
        elif kind == _TALK_END:
            a = ident
            k = self.agent_call[a]
            self.agent_call[a] = -1
            self.active_lines -= 1
            if self._sends_talk_ended:
                self._observe_pacer(PacingEvent(EventKind.TALK_ENDED, time, time - self.since[a]))
            self._set_agent(a, _WRAP, time)
            self._push(time + self.stream.wrap[k], _WRAP_END, a)
            del self.is_person[k], self.deadline[k]
        elif kind == _WRAP_END:
            a = ident
            if self._sends_wrap_ended:
                self._observe_pacer(PacingEvent(EventKind.WRAP_ENDED, time, time - self.since[a]))
            if self.pending_logout[a]:
                self._logout(a, time)
            elif self.pending_break[a] > 0:
                self._set_agent(a, _PAUSE, time)
                self._push(time + self.pending_break[a], _BREAK_END, a)
                self.pending_break[a] = 0.0
            else:
                self._agent_ready(a, time)
        elif kind == _HOLD:
            k = ident
            if k in self.waiting:
                del self.waiting[k]
                self.active_lines -= 1
                today = self.today
                today[_DROPS] += 1
                today[_OBSERVED] += 1
                if self._sends_dropped:
                    self._observe_pacer(PacingEvent(EventKind.CALL_DROPPED, time))
                if self._sends_abandoned:
                    self._observe_pacer(PacingEvent(EventKind.CALL_ABANDONED, time))
                if self.is_person[k]:
                    today[_ABANDONED] += 1
                del self.is_person[k], self.deadline[k]
                if self.event_log is not None:
                    self.event_log.append((time, "drop", k))
        elif kind == _AMD_FP:
            k = ident
            placed = self.ringing.pop(k)
            self.active_lines -= 1
            # A person hung up on as a machine: abandoned under 47 CFR 64.1200(a)(7), and
            # the runtime cannot know it (it believes it reached a machine).
            today = self.today
            today[_LIVE] += 1
            today[_ABANDONED] += 1
            today[_AMD_FP_COUNT] += 1
            if self._ended_fast is not None:
                self._ended_fast(time - placed)
            elif self._sends_ended:
                self._observe_pacer(PacingEvent(EventKind.DIAL_ENDED, time, time - placed, DialOutcome.MACHINE))
            if self.event_log is not None:
                self.event_log.append((time, "end", k))
        elif kind == _LOGIN:
            self.login_at[ident] = time
            self.pending_logout[ident] = False
            self.pending_break[ident] = 0.0
            self._agent_ready(ident, time)
        elif kind == _BREAK:
            a = ident
            if self.state[a] == _READY:
                self._set_agent(a, _PAUSE, time)
                self._push(time + self.break_length, _BREAK_END, a)
            elif self.state[a] in (_TALK, _WRAP):
                self.pending_break[a] = self.break_length
        elif kind == _BREAK_END:
            a = ident
            if self.state[a] == _PAUSE:
                if self.pending_logout[a]:
                    self._logout(a, time)
                else:
                    self._agent_ready(a, time)
        elif kind == _LOGOUT:
            a = ident
            if self.state[a] in (_READY, _PAUSE):
                self._logout(a, time)
            elif self.state[a] != _OFF:
                self.pending_logout[a] = True

    def _logout(self, a: int, now: float) -> None:
        self._set_agent(a, _OFF, now)
        self.today[_LOGGED_S] += now - self.login_at[a]

    # -- the day loop ---------------------------------------------------------------------

    def _schedule_agents(self, day_start: float, day_end: float) -> None:
        s = self.s
        rng = _rng(self.seed, self.replication, self.day, 2)
        spread = s.login_spread_minutes * 60.0
        length = day_end - day_start
        self.break_length = s.break_minutes * 60.0
        for a in range(s.agents):
            login = day_start + float(rng.uniform(0.0, spread)) if spread > 0 else day_start
            self._push(login, _LOGIN, a)
            for _ in range(s.breaks_per_day):
                # Breaks fall in the middle 80% of the shift.
                self._push(day_start + length * float(rng.uniform(0.1, 0.9)), _BREAK, a)
            self._push(day_end, _LOGOUT, a)

    def _tally(self) -> AbandonTally:
        today = self.today
        return AbandonTally(
            live_answers=int(self.prior_answers + today[_DECLARED]),
            abandoned=int(self.prior_abandons + today[_OBSERVED]),
        )

    def tick(self) -> bool:
        """This tick's calls-per-second tokens and free lines; False when the pacer need not be asked."""
        s = self.s
        cps = s.calls_per_second
        tokens = self.cps_tokens + cps * TICK_SECONDS
        self.cps_tokens = tokens = cps if cps < tokens else tokens  # min(cps, tokens), as before
        if not self._changed and self._state_only:
            return False  # it would answer 0 again: nothing it looks at has changed
        # max(0, min(trunk lines free, whole tokens)), without the builtins' calls.
        free = s.max_lines - self.active_lines
        whole = int(tokens)
        if whole < free:
            free = whole
        if free < 0:
            free = 0
        if s.lead_list_size:
            free = min(free, s.lead_list_size - self.leads_used)
        self._free = free
        self.decisions += 1
        return True

    def prepare(self, now: float) -> PacingSnapshot | None:
        """The snapshot the pacer is asked with at this tick, or None when it need not be."""
        if not self.tick():
            return None
        changed = self._changed
        free = self._free
        last = self._snapshot
        if changed or last is None:
            today = self.today
            answers = int(self.prior_answers + today[_DECLARED])
            abandons = int(self.prior_abandons + today[_OBSERVED])
            tally = last.abandon_tally if last is not None else None
            if tally is None or tally.live_answers != answers or tally.abandoned != abandons:
                tally = AbandonTally(live_answers=answers, abandoned=abandons)  # else the same (immutable) one
            snapshot = PacingSnapshot(
                tuple(self.ready.values()),
                tuple(self.talking.values()),
                tuple(self.wrapping.values()),
                self.paused,
                tuple(self.ringing.values()),
                len(self.waiting),
                free,
                tally,
            )
        elif last.free_lines != free:  # nothing happened: the same snapshot, more free lines
            snapshot = PacingSnapshot(
                last.ready_since, last.talking_since, last.wrapping_since, last.paused_agents,
                last.ringing_since, last.calls_waiting, free, last.abandon_tally,
            )  # fmt: skip
        else:
            snapshot = last
        self._snapshot = snapshot
        return snapshot

    def apply(self, now: float, asked: int) -> None:
        """Place what the pacer asked for, within trunk lines, calls per second and leads."""
        free = self._free
        n = asked if asked < free else free
        if n > 0:
            if self.event_log is not None or (self._sends_placed and self._placed_many is None):
                # One dial at a time: traced, or the pacer hears of each dial as it is placed.
                for _ in range(n):
                    self._place(now)
            else:
                if self._sends_placed and self._placed_many is not None:
                    # One call for the n dials placed at this instant (`Pacer.observe_placed`);
                    # nothing else reaches the pacer between them.
                    self._placed_many(now, n)
                self._place_many(now, n)
            self.cps_tokens -= n
        # Lines placed change the next snapshot; for a state-only pacer, a capped answer
        # must be asked again.
        self._changed = n > 0 if not self._state_only else asked > n

    def begin_day(self, day: int) -> tuple[float, float]:
        s = self.s
        daily = self.result.daily
        self.day = day
        self.today = [0.0] * len(DAILY_COUNTERS)
        self.stream = _DayStream(s, _rng(self.seed, self.replication, day, 1))
        self.next_dial = 0
        self.heap = []
        self.seq = 0
        self.ready = {}
        self.talking = {}
        self.wrapping = {}
        self.paused = 0
        self.ringing = {}
        self.waiting = {}
        self.deadline = {}
        self.is_person = {}
        self.active_lines = 0
        self.cps_tokens = 0.0
        self._changed = True
        self._snapshot = None
        self._free = 0
        self.line_ends = []
        first = max(0, day - (ABANDON_WINDOW_DAYS - 1))
        self.prior_answers = sum(daily["human_declared"][first:day])
        self.prior_abandons = sum(daily["observed_abandons"][first:day])
        day_start = day * SECONDS_PER_DAY + s.shift_start_hour * 3600.0
        day_end = day_start + s.hours_per_day * 3600.0
        self._schedule_agents(day_start, day_end)
        return day_start, day_end

    def advance(self, until: float) -> None:
        """Handle every event due by `until`, in time order."""
        heap = self.heap
        line_ends = self.line_ends
        pop = heapq.heappop
        if line_ends and line_ends[0] <= until:
            self._changed = True
            ended = 0
            while line_ends and line_ends[0] <= until:
                pop(line_ends)
                ended += 1
            self.active_lines -= ended
        if heap and heap[0][0] <= until:
            self._changed = True
            handle = self._handle
            ended_fast = self._ended_fast
            if self.event_log is not None or (ended_fast is None and self._sends_ended):
                while heap and heap[0][0] <= until:
                    time, _, kind, ident = pop(heap)
                    handle(time, kind, ident)
                return
            # The most frequent event, a line needing no agent ending, handled here (as
            # `_handle` does, untraced): the pacer hears the seconds, if anything.
            ringing = self.ringing
            ended = 0
            while heap and heap[0][0] <= until:
                time, _, kind, ident = pop(heap)
                if kind == _LINE_END:
                    placed = ringing.pop(ident)
                    ended += 1
                    if ended_fast is not None:
                        ended_fast(time - placed)
                else:
                    handle(time, kind, ident)
            self.active_lines -= ended  # no handler reads it: only the next tick does

    def end_day(self) -> None:
        # After the shift: no new dials; calls in progress finish, agents log out.
        self.advance(math.inf)
        daily = self.result.daily
        for i, key in enumerate(DAILY_COUNTERS):
            daily[key][self.day] = self.today[i]

    def run(self) -> ReplicationResult:
        """All days, alone, tick by tick, asking the pacer directly (`decide`).

        A state-only pacer that is not asked at a tick (nothing changed) would not be
        asked again before the next event is due: its calls-per-second tokens are already
        full after one tick, and nothing else moves. So the loop jumps to the first tick at
        or after that event: the same ticks, the same answers. Ticks stay whole seconds
        from a whole-second shift start (exact in floating point); otherwise no tick is
        skipped.
        """
        decide = self.pacer.decide
        counts: Callable[[int, int, int, int, int, int, float], int] | None = getattr(
            self.pacer, "decide_counts", None
        )
        advance, prepare, apply, tick = self.advance, self.prepare, self.apply, self.tick
        # A pacer of counts alone that does not hear how lines end: a line that needs no agent
        # is only a count until it ends, so its end is a bare time in `line_ends` (popped by
        # the tick), not an event (no dict entry, no handler call).
        self._lines_apart = (
            counts is not None
            and not self._sends_ended
            and self.event_log is None
            and (not self._sends_placed or self._placed_many is not None)
        )
        for day in range(self.s.days):
            day_start, day_end = self.begin_day(day)
            skips = self._state_only and TICK_SECONDS == 1.0 and day_start.is_integer()
            heap, line_ends = self.heap, self.line_ends
            ready, talking, wrapping, ringing, waiting = (
                self.ready, self.talking, self.wrapping, self.ringing, self.waiting
            )
            next_tick = day_start
            while next_tick < day_end:
                if (heap and heap[0][0] <= next_tick) or (line_ends and line_ends[0] <= next_tick):
                    advance(next_tick)
                if counts is not None:
                    # A pacer of counts alone: no snapshot's tuples built (`decide_counts`).
                    asked_now = tick()
                    if asked_now:
                        apply(next_tick, counts(len(ready), len(talking), len(wrapping), self.paused,
                                                len(ringing) + len(line_ends), len(waiting), next_tick))  # fmt: skip
                else:
                    snapshot = prepare(next_tick)
                    asked_now = snapshot is not None
                    if snapshot is not None:
                        apply(next_tick, decide(snapshot, next_tick))
                if not asked_now and skips:
                    due = float(math.ceil(heap[0][0])) if heap else math.inf
                    if line_ends and line_ends[0] < due:
                        due = float(math.ceil(line_ends[0]))
                    if due > next_tick + TICK_SECONDS:
                        # The ticks up to the event would ask nothing (tokens stay full).
                        if due >= day_end:
                            break
                        next_tick = due
                        continue
                next_tick += TICK_SECONDS
            self.end_day()
        return self.result


def run_together(simulations: Sequence[Simulation]) -> list[ReplicationResult]:
    """Run several simulations (same days and shift hours); each sees exactly what it would alone.

    Simulations whose pacers have a batched form (`decide_many`) run second by second side
    by side: their pacers are asked together each second (`decide_together`), so the array
    work is done once for all of them (numpy's fixed cost per operation, not the
    arithmetic, is what a decision costs for a small team). The others share nothing, so
    each runs alone, one after the other (`Simulation.run`: no per-second bookkeeping for
    the others, and the seconds where a state-only pacer would not be asked are skipped).
    """
    if not simulations:
        return []
    first = simulations[0].s
    for sim in simulations:
        if (sim.s.days, sim.s.shift_start_hour, sim.s.hours_per_day) != (
            first.days, first.shift_start_hour, first.hours_per_day,
        ):  # fmt: skip
            raise ValueError("simulations run together must share days and shift hours")
    batched = [sim for sim in simulations if getattr(type(sim.pacer), "decide_many", None) is not None]
    if len(batched) > 1:
        _run_lockstep(batched)
    for sim in simulations:
        if len(batched) <= 1 or sim not in batched:
            sim.run()
    return [sim.result for sim in simulations]


def _run_lockstep(simulations: Sequence[Simulation]) -> None:
    first = simulations[0].s
    for day in range(first.days):
        bounds = [sim.begin_day(day) for sim in simulations]
        day_start, day_end = bounds[0]
        next_tick = day_start
        while next_tick < day_end:
            asking: list[Simulation] = []
            snapshots: list[PacingSnapshot] = []
            for sim in simulations:
                heap = sim.heap
                if heap and heap[0][0] <= next_tick:  # else `advance` has nothing to do
                    sim.advance(next_tick)
                snapshot = sim.prepare(next_tick)
                if snapshot is not None:
                    asking.append(sim)
                    snapshots.append(snapshot)
            if asking:
                answers = decide_together([sim.pacer for sim in asking], snapshots, next_tick)
                for sim, asked in zip(asking, answers, strict=True):
                    sim.apply(next_tick, asked)
            next_tick += TICK_SECONDS
        for sim in simulations:
            sim.end_day()


class BatchPacer(Pacer, Protocol):
    """A pacer class that can decide for several of its instances in one pass."""

    @staticmethod
    def decide_many(pacers: Sequence[Pacer], snapshots: Sequence[PacingSnapshot], now: float) -> list[int]: ...


def decide_together(pacers: Sequence[Pacer], snapshots: Sequence[PacingSnapshot], now: float) -> list[int]:
    """Every pacer's `decide`, through its class's `decide_many` where it has one."""
    answers = [0] * len(pacers)
    groups: dict[type, list[int]] = {}
    for i, pacer in enumerate(pacers):
        groups.setdefault(type(pacer), []).append(i)
    for cls, members in groups.items():
        many = getattr(cls, "decide_many", None)
        if many is not None and len(members) > 1:
            results = many([pacers[i] for i in members], [snapshots[i] for i in members], now)
        else:
            results = [pacers[i].decide(snapshots[i], now) for i in members]
        for i, result in zip(members, results, strict=True):
            answers[i] = result
    return answers


def simulate(scenario: Scenario, pacer: Pacer, seed: int = 1, replication: int = 0) -> ReplicationResult:
    """Run one replication of `scenario` under `pacer`."""
    return Simulation(scenario, pacer, seed, replication).run()
