"""Scrubbing a batch of numbers against every list the gate checks: the Redis side of a list
import (the pure look-ups are in `compliance_rules.batch`).

For each bitmap list (the federal registry, each state list) the numbers are grouped by area
code and each area code's bitmap is fetched once, a few area codes per round trip, and the
numbers tested in numpy; an area code with fewer numbers to test (`bitmap_min_numbers`) is asked
for just their bits, with one BITFIELD_RO per area code, since a 1.25 MB bitmap then costs more
than the answer.
The sparse set lists (internal, litigator, opt-outs) are fetched whole per area code and matched
with `np.isin`. State lists are checked for the numbers whose lead may be in that state (the
area code's states, the ZIP code's, the given state: `batch.locate`).

This answers "is the number on a list"; the gate still decides every dial at its instant.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np

from compliance_rules import batch
from compliance_rules.batch import BoolArray, Int64Array, MaskArray
from compliance_rules.ruleset import RuleBook
from compliance_rules.store import DncStore

FEDERAL = "federal"
SET_LISTS = ("internal", "litigator", "optout")


@dataclass
class ScrubStats:
    """How the look-ups were made (for the benchmark and the logs)."""

    bitmaps_fetched: int = 0
    bits_asked: int = 0
    set_area_codes: int = 0


@dataclass(frozen=True)
class ScrubHits:
    """Which numbers are on which list (one entry per number scrubbed)."""

    federal: BoolArray
    states: dict[str, BoolArray]  # state code -> on that state's list (and the lead may be there)
    internal: BoolArray
    litigator: BoolArray
    optout: BoolArray
    list_dates: dict[str, str]  # list name -> date of the copy used
    stats: ScrubStats = field(default_factory=ScrubStats)

    def any_state(self) -> BoolArray:
        found = np.zeros(len(self.federal), dtype=np.bool_)
        for hits in self.states.values():
            found |= hits
        return found


class BatchScrubber:
    """Tests many numbers against the gate's lists with few Redis round trips."""

    def __init__(
        self,
        store: DncStore,
        book: RuleBook,
        *,
        bitmap_min_numbers: int = 1024,
        bitmaps_per_round_trip: int = 16,
    ) -> None:
        self.store = store
        self.book = book
        self.bitmap_min_numbers = bitmap_min_numbers
        self.bitmaps_per_round_trip = bitmaps_per_round_trip

    async def scrub(self, nationals: Int64Array, states: MaskArray) -> ScrubHits:
        """`nationals`: valid 10-digit numbers; `states`: each lead's state mask (`batch.locate`)."""
        stats = ScrubStats()
        everyone = np.ones(len(nationals), dtype=np.bool_)
        list_dates = {k: v for k, v in (await self.store.versions()).items() if ":" not in k.removeprefix("state:")}
        federal = await self._bitmap_hits(FEDERAL, nationals, everyone, stats)
        state_hits: dict[str, BoolArray] = {}
        for state in sorted(self.book.state_dnc_lists):
            selected = batch.with_state(states, state)
            if selected.any():
                state_hits[state] = await self._bitmap_hits(f"state:{state}", nationals, selected, stats)
        sets = await self._set_hits(nationals, stats)
        return ScrubHits(federal, state_hits, sets["internal"], sets["litigator"], sets["optout"], list_dates, stats)

    async def _bitmap_hits(self, name: str, nationals: Int64Array, selected: BoolArray, stats: ScrubStats) -> BoolArray:
        hits = np.zeros(len(nationals), dtype=np.bool_)
        chosen = np.flatnonzero(selected)
        # Sorting a million numbers takes a tenth of a second: off the event loop (the API shares it).
        groups = [(npa, chosen[positions])
                  for npa, positions in await asyncio.to_thread(batch.group_by_npa, nationals[chosen])]
        dense = [(npa, where) for npa, where in groups if len(where) >= self.bitmap_min_numbers]
        sparse = [(npa, where) for npa, where in groups if len(where) < self.bitmap_min_numbers]
        for start in range(0, len(dense), self.bitmaps_per_round_trip):
            part = dense[start : start + self.bitmaps_per_round_trip]
            bitmaps = await self.store.bitmaps(name, [npa for npa, _ in part])
            stats.bitmaps_fetched += len(part)
            for (_, where), bitmap in zip(part, bitmaps, strict=True):
                hits[where] = batch.bits_set(bitmap, nationals[where] % 10**7)
        for start in range(0, len(sparse), 64):
            part = sparse[start : start + 64]
            answers = await self.store.bits(name, [(npa, (nationals[where] % 10**7).tolist()) for npa, where in part])
            for (_, where), bits in zip(part, answers, strict=True):
                hits[where] = np.array(bits, dtype=np.bool_)
                stats.bits_asked += len(where)
        return hits

    async def _set_hits(self, nationals: Int64Array, stats: ScrubStats) -> dict[str, BoolArray]:
        found = {name: np.zeros(len(nationals), dtype=np.bool_) for name in SET_LISTS}
        groups = await asyncio.to_thread(batch.group_by_npa, nationals)
        stats.set_area_codes += len(groups)
        for start in range(0, len(groups), 256):
            part = groups[start : start + 256]
            npas = [npa for npa, _ in part]
            for name in SET_LISTS:
                for (_, where), members in zip(part, await self.store.set_members(name, npas), strict=True):
                    if members:
                        found[name][where] = batch.members_in(members, nationals[where] % 10**7)
        return found
