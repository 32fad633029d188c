"""FROZEN REFERENCE: the simulator engine as it was before the speed work (commit aa933b2).

The equivalence tests run it against the current code: same decisions, same results.
Do not edit, except to keep it importable.

A discrete-event call-center simulator that drives any `Pacer`.

Speed matters (the benchmark runs millions of dials), so the hot loop uses plain lists,
dicts and a `heapq` of tuples rather than objects per call. Randomness is drawn up front
per (seed, replication, day) in blocks: the k-th dial of a day gets the same outcome,
ring time, greeting, talk and wrap time under every policy, and agents get the same
log-in times and breaks, so policy comparisons are paired (common random numbers).

Timeline of a live answer: answer at `t0 + ring`; the greeting lasts `greeting`; AMD
declares a person `amd` seconds after the greeting ends; the regulatory deadline is
2 s after the greeting (47 CFR 64.1200(a)(7), 16 CFR 310.4(b)(4)(iii)). A person not
bridged by then is abandoned, even if an agent picks them up later. A waiting call
gives up after `drop_call_seconds` (VICIdial's DROP: safe-harbor message).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
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


class _DayStream:
    """Pre-drawn per-dial randomness for one day, extended in fixed blocks (same for every policy)."""

    def __init__(self, scenario: Scenario, rng: np.random.Generator) -> None:
        self.s = scenario
        self.rng = rng
        self.u_outcome: list[float] = []
        self.ring: list[float] = []
        self.greeting: list[float] = []
        self.amd: list[float] = []
        self.amd_machine: list[float] = []
        self.u_error: list[float] = []
        self.talk: list[float] = []
        self.wrap: list[float] = []
        self.machine_talk: list[float] = []
        self.busy: list[float] = []
        self.unallocated: list[float] = []

    def ensure(self, k: int) -> None:
        while k >= len(self.u_outcome):
            s, rng = self.s, self.rng
            self.u_outcome += rng.random(BLOCK).tolist()
            self.ring += s.ring_seconds.sample(rng, BLOCK).tolist()
            self.greeting += s.greeting_seconds.sample(rng, BLOCK).tolist()
            self.amd += s.amd_seconds.sample(rng, BLOCK).tolist()
            self.amd_machine += s.amd_machine_seconds.sample(rng, BLOCK).tolist()
            self.u_error += rng.random(BLOCK).tolist()
            self.talk += s.talk_seconds.sample(rng, BLOCK).tolist()
            self.wrap += s.wrap_seconds.sample(rng, BLOCK).tolist()
            self.machine_talk += s.machine_talk_seconds.sample(rng, BLOCK).tolist()
            self.busy += s.busy_seconds.sample(rng, BLOCK).tolist()
            self.unallocated += s.unallocated_seconds.sample(rng, BLOCK).tolist()


def _rng(seed: int, replication: int, day: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, replication, day, stream]))


class Simulation:
    """One replication of a scenario under one pacer. Call `run()` once."""

    def __init__(self, scenario: Scenario, pacer: Pacer, seed: int = 1, replication: int = 0) -> None:
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
        self.dial_time: dict[int, float] = {}
        self.deadline: dict[int, float] = {}
        self.is_person: dict[int, bool] = {}
        self.active_lines = 0
        self.cps_tokens = 0.0
        self.prior_answers = 0.0
        self.prior_abandons = 0.0
        self.break_length = 0.0
        bind = getattr(pacer, "bind_peek", None)
        if callable(bind):
            bind(self._peek)

    # -- randomness -------------------------------------------------------------------

    def _plan(self, k: int) -> tuple[int, float, float]:
        """(plan, seconds to the decision or line end, deadline offset from dial) for dial k."""
        st = self.stream
        st.ensure(k)
        s = self.s
        u = st.u_outcome[k]
        timeout = s.ring_timeout_seconds
        if u < s.p_live:
            ring = st.ring[k]
            if ring > timeout:
                return _PLAN_OTHER, timeout, 0.0
            greeting_end = ring + st.greeting[k]
            decided = greeting_end + st.amd[k]
            deadline = greeting_end + ABANDON_DEADLINE_SECONDS
            if st.u_error[k] < s.amd_human_error:
                return _PLAN_HUMAN_AS_MACHINE, decided, deadline
            return _PLAN_HUMAN, decided, deadline
        u -= s.p_live
        if u < s.p_machine:
            ring = st.ring[k]
            if ring > timeout:
                return _PLAN_OTHER, timeout, 0.0
            decided = ring + st.amd_machine[k]
            if st.u_error[k] < s.amd_machine_error:
                # The runtime will think the greeting ended `1 s` before it declared a person.
                return _PLAN_MACHINE_AS_HUMAN, decided, decided + 1.0
            return _PLAN_OTHER, decided, 0.0
        u -= s.p_machine
        if u < s.p_busy:
            return _PLAN_OTHER, st.busy[k], 0.0
        u -= s.p_busy
        if u < s.p_unallocated:
            return _PLAN_OTHER, st.unallocated[k], 0.0
        return _PLAN_OTHER, timeout, 0.0

    def _outcome(self, k: int) -> DialOutcome:
        s, u = self.s, self.stream.u_outcome[k]
        if u < s.p_live + s.p_machine:
            return DialOutcome.NO_ANSWER if self.stream.ring[k] > s.ring_timeout_seconds else DialOutcome.MACHINE
        if u < s.p_live + s.p_machine + s.p_busy:
            return DialOutcome.BUSY
        if u < s.p_live + s.p_machine + s.p_busy + s.p_unallocated:
            return DialOutcome.UNALLOCATED
        return DialOutcome.NO_ANSWER

    def _peek(self, ahead: int) -> tuple[bool, float] | None:
        """For the oracle: will the `ahead`-th next dial need an agent, and after how long?"""
        if self.s.lead_list_size and self.leads_used + ahead >= self.s.lead_list_size:
            return None
        plan, decided, _ = self._plan(self.next_dial + ahead)
        return plan in (_PLAN_HUMAN, _PLAN_MACHINE_AS_HUMAN), decided

    # -- bookkeeping --------------------------------------------------------------------

    def _push(self, time: float, kind: int, ident: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (time, self.seq, kind, ident))

    def _set_agent(self, a: int, new: int, now: float) -> None:
        old = self.state[a]
        elapsed = now - self.since[a]
        d = self.day
        daily = self.result.daily
        if old == _READY:
            daily["idle_seconds"][d] += elapsed
            del self.ready[a]
        elif old == _TALK:
            daily["machine_talk_seconds" if self.on_machine[a] else "talk_seconds"][d] += elapsed
            del self.talking[a]
        elif old == _WRAP:
            daily["wrap_seconds"][d] += elapsed
            del self.wrapping[a]
        elif old == _PAUSE:
            daily["pause_seconds"][d] += elapsed
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

    def _observe(self, kind: EventKind, now: float, seconds: float = 0.0, outcome: DialOutcome | None = None) -> None:
        self.pacer.observe(PacingEvent(kind, now, seconds, outcome))

    def _count(self, key: str, amount: float = 1.0) -> None:
        self.result.daily[key][self.day] += amount

    # -- the call flow ------------------------------------------------------------------

    def _place(self, now: float) -> None:
        k = self.next_dial
        self.next_dial += 1
        self.leads_used += 1
        self.active_lines += 1
        self._count("dials")
        self._observe(EventKind.DIAL_PLACED, now)
        plan, offset, deadline = self._plan(k)
        self.ringing[k] = now
        self.dial_time[k] = now
        if self.event_log is not None:
            self.event_log.append((now, "dial", k))
        if plan == _PLAN_OTHER:
            self._push(now + offset, _LINE_END, k)
        elif plan == _PLAN_HUMAN_AS_MACHINE:
            self._push(now + offset, _AMD_FP, k)
        else:
            self.deadline[k] = now + deadline
            self.is_person[k] = plan == _PLAN_HUMAN
            self._push(now + offset, _HUMAN, k)

    def _bridge(self, k: int, a: int, now: float) -> None:
        decided = self.waiting.pop(k, None)
        wait = 0.0 if decided is None else now - decided
        person = self.is_person[k]
        if person:
            self._count("connects")
        if now > self.deadline[k] + 1e-9:
            self._count("observed_abandons")
            self._observe(EventKind.CALL_ABANDONED, now)
            if person:
                self._count("abandoned")
                self._count("bridged_late")
        self._observe(EventKind.CALL_BRIDGED, now, wait)
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
            del self.ringing[k]
            self.active_lines -= 1
            self._observe(EventKind.DIAL_ENDED, time, time - self.dial_time.pop(k), self._outcome(k))
            if self.event_log is not None:
                self.event_log.append((time, "end", k))
        elif kind == _HUMAN:
            k = ident
            del self.ringing[k]
            self._count("human_declared")
            if self.is_person[k]:
                self._count("live_answers")
            self._observe(EventKind.HUMAN_ANSWERED, time, time - self.dial_time.pop(k))
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
            self._observe(EventKind.TALK_ENDED, time, time - self.since[a])
            self._set_agent(a, _WRAP, time)
            self._push(time + self.stream.wrap[k], _WRAP_END, a)
            del self.is_person[k], self.deadline[k]
        elif kind == _WRAP_END:
            a = ident
            self._observe(EventKind.WRAP_ENDED, time, time - self.since[a])
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
                self._count("vici_drops")
                self._count("observed_abandons")
                self._observe(EventKind.CALL_DROPPED, time)
                self._observe(EventKind.CALL_ABANDONED, time)
                if self.is_person[k]:
                    self._count("abandoned")
                del self.is_person[k], self.deadline[k]
                if self.event_log is not None:
                    self.event_log.append((time, "drop", k))
        elif kind == _AMD_FP:
            k = ident
            del self.ringing[k]
            self.active_lines -= 1
            # A person hung up on as a machine: abandoned under 47 CFR 64.1200(a)(7), and
            # the runtime cannot know it (it believes it reached a machine).
            self._count("live_answers")
            self._count("abandoned")
            self._count("amd_false_positive")
            self._observe(EventKind.DIAL_ENDED, time, time - self.dial_time.pop(k), DialOutcome.MACHINE)
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
        self._count("logged_in_seconds", now - self.login_at[a])

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
        d = self.day
        daily = self.result.daily
        return AbandonTally(
            live_answers=int(self.prior_answers + daily["human_declared"][d]),
            abandoned=int(self.prior_abandons + daily["observed_abandons"][d]),
        )

    def _tick(self, now: float) -> None:
        s = self.s
        self.cps_tokens = min(s.calls_per_second, self.cps_tokens + s.calls_per_second * TICK_SECONDS)
        free = min(s.max_lines - self.active_lines, int(self.cps_tokens))
        if s.lead_list_size:
            free = min(free, s.lead_list_size - self.leads_used)
        snapshot = PacingSnapshot(
            ready_since=tuple(self.ready.values()),
            talking_since=tuple(self.talking.values()),
            wrapping_since=tuple(self.wrapping.values()),
            paused_agents=self.paused,
            ringing_since=tuple(self.ringing.values()),
            calls_waiting=len(self.waiting),
            free_lines=max(0, free),
            abandon_tally=self._tally(),
        )
        # Trunk lines, calls per second and the lead list cap what the pacer asked for.
        n = max(0, min(self.pacer.decide(snapshot, now), free))
        for _ in range(n):
            self._place(now)
        self.cps_tokens -= n

    def run(self) -> ReplicationResult:
        s = self.s
        daily = self.result.daily
        for day in range(s.days):
            self.day = day
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
            self.dial_time = {}
            self.deadline = {}
            self.is_person = {}
            self.active_lines = 0
            self.cps_tokens = 0.0
            first = max(0, day - (ABANDON_WINDOW_DAYS - 1))
            self.prior_answers = sum(daily["human_declared"][first:day])
            self.prior_abandons = sum(daily["observed_abandons"][first:day])
            day_start = day * SECONDS_PER_DAY + s.shift_start_hour * 3600.0
            day_end = day_start + s.hours_per_day * 3600.0
            self._schedule_agents(day_start, day_end)
            heap = self.heap
            handle = self._handle
            next_tick = day_start
            while next_tick < day_end:
                while heap and heap[0][0] <= next_tick:
                    time, _, kind, ident = heapq.heappop(heap)
                    handle(time, kind, ident)
                self._tick(next_tick)
                next_tick += TICK_SECONDS
            # After the shift: no new dials; calls in progress finish, agents log out.
            while heap:
                time, _, kind, ident = heapq.heappop(heap)
                handle(time, kind, ident)
        return self.result


def simulate(scenario: Scenario, pacer: Pacer, seed: int = 1, replication: int = 0) -> ReplicationResult:
    """Run one replication of `scenario` under `pacer`."""
    return Simulation(scenario, pacer, seed, replication).run()

