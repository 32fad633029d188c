"""Redis-backed lists and counters for the gate (the IO edge of the compliance package).

Layout (every key under the configured prefix; `{NPA}` is a Redis Cluster hash tag, so all lists
of one area code live on one node):

* `dnc:federal:{NPA}`, `dnc:state:XX:{NPA}`: bitmaps, offset = the 7-digit local number
  (10^7 bits = 1.25 MB per area code; design decision 7). Dense lists only.
* `dnc:internal:{NPA}`, `dnc:litigator:{NPA}`, `dnc:optout:{NPA}`: sets of 7-digit local numbers.
  These lists are sparse: a bitmap with one bit set near the end still allocates 1.25 MB, so a
  few thousand opt-outs spread over 300 area codes would cost 375 MB as bitmaps (design decision 7
  allows sets for small lists). A check is still one command per list.
* `dnc:meta`: hash of list name -> date of the copy (`YYYY-MM-DD`), `NAME:imported_at`, `NAME:count`.
* `cap:SUBJECT:PERSON`: sorted set of attempt times (ms), trimmed and expired after the longest window.
  An attempt is recorded under every key of its person (the lead id and the E.164 number), and
  counted once over their union: a lead dialed by its campaign and then by hand without its lead
  id (click-to-call) is still one person to the caps.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis

from compliance_rules.importer import ParseStats
from compliance_rules.model import US_STATE_CODES, ListVersions, NumberFacts
from compliance_rules.numbers import NumberInfo
from compliance_rules.ruleset import MAX_CAP_WINDOW_HOURS

BITMAP_BYTES = 10**7 // 8
CAP_HORIZON = timedelta(hours=MAX_CAP_WINDOW_HOURS)  # the longest cap window the rule data may hold
_LIST_NAME = re.compile(r"^(federal|internal|litigator|optout|state:[A-Z]{2})$")
SET_LISTS = frozenset({"internal", "litigator", "optout"})
FLUSH_NPAS = 64  # area codes buffered in memory during an import before merging into Redis

# Atomically: refuse when any cap (window_ms, max) is reached, else record the attempt. The window
# is [now - window, +inf): an attempt exactly a window ago, or stamped ahead by another controller's
# clock, still counts (as `rules._check_caps` counts them). KEYS are one person's keys (lead id,
# number): an attempt is counted once over their union and recorded under each.
_RESERVE_SCRIPT = """
local now = tonumber(ARGV[1])
local horizon = tonumber(ARGV[3])
for i = 4, #ARGV, 2 do
  local window = tonumber(ARGV[i])
  local limit = tonumber(ARGV[i + 1])
  local seen = {}
  local count = 0
  for _, key in ipairs(KEYS) do
    for _, member in ipairs(redis.call('ZRANGEBYSCORE', key, now - window, '+inf')) do
      if not seen[member] then
        seen[member] = true
        count = count + 1
      end
    end
  end
  if count >= limit then
    return 0
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (now - horizon))
  redis.call('PEXPIRE', key, horizon)
end
return 1
"""


class ListNameError(ValueError):
    """Not a list the gate knows (federal, state:XX, internal, litigator, optout)."""


def check_list_name(name: str) -> str:
    if not _LIST_NAME.match(name):
        raise ListNameError(f"unknown list {name!r}: use federal, state:XX, internal, litigator or optout")
    if name.startswith("state:") and name[6:] not in US_STATE_CODES:
        raise ListNameError(f"unknown state in list {name!r}: XX is a two-letter US state code such as state:FL")
    return name


@dataclass(frozen=True)
class FactsQuery:
    """What to look up for one number."""

    number: NumberInfo
    state_lists: tuple[str, ...]  # e.g. ("state:FL",)
    persons: tuple[str, ...]  # the person's cap keys: lead id and E.164 number (either may be absent)
    subject: str


@dataclass(frozen=True)
class ImportResult:
    list_name: str
    numbers: int
    area_codes: int
    rejected: int
    list_date: str


class DncStore:
    """DNC lists, opt-outs and attempt counters in one Redis, under one key prefix."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._reserve = redis.register_script(_RESERVE_SCRIPT)

    # -- keys ---------------------------------------------------------------------------------
    def list_key(self, name: str, npa: int) -> str:
        return f"{self.prefix}dnc:{name}:{{{npa:03d}}}"

    @property
    def meta_key(self) -> str:
        return f"{self.prefix}dnc:meta"

    def cap_key(self, subject: str, person: str) -> str:
        return f"{self.prefix}cap:{subject}:{person}"

    # -- checks -------------------------------------------------------------------------------
    async def fetch(self, queries: Sequence[FactsQuery], now: datetime) -> tuple[ListVersions, list[NumberFacts]]:
        """List versions plus every list hit and recent attempt for each number: one round trip."""
        plan: list[tuple[list[str], int]] = []  # list names, cap keys
        since_ms = int((now - CAP_HORIZON).timestamp() * 1000)
        # `async with`: a pipeline cut short by the gate's time budget gives its connection back
        # (otherwise it leaks, and redis-py warns "Unclosed Pipeline client" when it is collected).
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.meta_key)
            for query in queries:
                number = query.number
                names = ["federal", *query.state_lists, *sorted(SET_LISTS)]
                for name in names:
                    key = self.list_key(name, number.npa)
                    if name in SET_LISTS:
                        pipe.sismember(key, str(number.local))
                    else:
                        pipe.getbit(key, number.local)
                # Up to +inf: an attempt another controller stamped a moment ahead still counts.
                for person in query.persons:
                    pipe.zrangebyscore(self.cap_key(query.subject, person), since_ms, "+inf")
                plan.append((names, len(query.persons)))
            replies = await pipe.execute()
        meta = {_text(k): _text(v) for k, v in replies[0].items()}
        versions = ListVersions({k: v for k, v in meta.items() if ":" not in k.removeprefix("state:")})
        facts: list[NumberFacts] = []
        position = 1
        for names, keys in plan:
            hits = frozenset(name for name, hit in zip(names, replies[position : position + len(names)], strict=True) if hit)
            position += len(names)
            # One attempt is recorded under each of the person's keys: counted once.
            members = sorted({_text(member) for reply in replies[position : position + keys] for member in reply})
            attempts = tuple(datetime.fromtimestamp(int(member.split(":", 1)[0]) / 1000, UTC) for member in members)
            position += keys
            facts.append(NumberFacts(hits, attempts))
        return versions, facts

    async def reserve_attempts(
        self, reservations: Sequence[tuple[str, str | Sequence[str], Sequence[tuple[int, int]]]], now: datetime
    ) -> list[bool]:
        """Record one attempt per (subject, person, caps) unless a cap (max, window hours) is reached.

        `person` is one key or several (the lead id and the number): the attempts under any of
        them count once each, and the new one is recorded under all. Atomic per person (a Lua
        script), so two controllers cannot both take the last slot.
        """
        if not reservations:
            return []
        now_ms = int(now.timestamp() * 1000)
        horizon_ms = int(CAP_HORIZON.total_seconds() * 1000)
        async with self.redis.pipeline(transaction=False) as pipe:  # see `fetch`
            for subject, person, caps in reservations:
                persons = (person,) if isinstance(person, str) else tuple(person)
                if not persons:
                    raise ValueError("an attempt needs at least one person key")
                args: list[int | str] = [now_ms, f"{now_ms}:{uuid.uuid4().hex[:12]}", horizon_ms]
                for max_attempts, window_hours in caps:
                    args += [window_hours * 3_600_000, max_attempts]
                keys = [self.cap_key(subject, key) for key in persons]
                await self._reserve(keys=keys, args=args, client=pipe)
            return [bool(reply) for reply in await pipe.execute()]

    async def record_attempt(self, subject: str, person: str | Sequence[str], now: datetime) -> None:
        """Count an attempt made without a reservation (every attempt counts toward the caps)."""
        await self.reserve_attempts([(subject, person, ())], now)

    # -- single numbers -----------------------------------------------------------------------
    async def set_membership(self, name: str, number: NumberInfo, member: bool) -> None:
        """Add (`member=True`) or remove one number; effective for the very next check anywhere."""
        check_list_name(name)
        key = self.list_key(name, number.npa)
        if name in SET_LISTS:
            if member:
                await self.redis.sadd(key, str(number.local))
            else:
                await self.redis.srem(key, str(number.local))
        else:
            await self.redis.setbit(key, number.local, 1 if member else 0)

    async def contains(self, name: str, number: NumberInfo) -> bool:
        check_list_name(name)
        key = self.list_key(name, number.npa)
        if name in SET_LISTS:
            return bool(await self.redis.sismember(key, str(number.local)))
        return bool(await self.redis.getbit(key, number.local))

    # -- bulk look-ups (compliance_rules.scrub) ---------------------------------------------
    async def bitmaps(self, name: str, npas: Sequence[int]) -> list[bytes | None]:
        """Whole area-code bitmaps of a bitmap list, one pipelined round trip (None: absent)."""
        pipe = self.redis.pipeline(transaction=False)
        for npa in npas:
            pipe.get(self.list_key(name, npa))
        return [reply if reply else None for reply in await pipe.execute()]

    async def bits(self, name: str, groups: Sequence[tuple[int, Sequence[int]]]) -> list[list[int]]:
        """The bits of many local numbers per area code of a bitmap list: one BITFIELD_RO per
        area code, all pipelined (an absent key reads as all zeros)."""
        pipe = self.redis.pipeline(transaction=False)
        for npa, offsets in groups:
            args: list[str | int] = []
            for offset in offsets:
                args += ["GET", "u1", offset]
            pipe.execute_command("BITFIELD_RO", self.list_key(name, npa), *args)
        return [list(reply) for reply in await pipe.execute()]

    async def set_members(self, name: str, npas: Sequence[int]) -> list[set[bytes]]:
        """Every member of a set list for each area code, one pipelined round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for npa in npas:
            pipe.smembers(self.list_key(name, npa))
        return [{m if isinstance(m, bytes) else str(m).encode() for m in reply} for reply in await pipe.execute()]

    async def versions(self) -> dict[str, str]:
        return {_text(k): _text(v) for k, v in (await self.redis.hgetall(self.meta_key)).items()}

    async def set_list_date(self, name: str, list_date: date, count: int | None = None) -> None:
        check_list_name(name)
        items: list[str] = [name, list_date.isoformat(), f"{name}:imported_at", datetime.now(UTC).isoformat()]
        if count is not None:
            items += [f"{name}:count", str(count)]
        await self.redis.hset(self.meta_key, items=items)

    # -- bulk import ----------------------------------------------------------------------------
    async def import_full(
        self, name: str, chunks: Iterable[npt.NDArray[np.int64]], list_date: date, stats: ParseStats | None = None
    ) -> ImportResult:
        """Replace the list for every area code present in `chunks` (other area codes are kept).

        Numbers are gathered per area code into new keys, then renamed over the old ones, so a
        check never sees a half-imported area code.
        """
        check_list_name(name)
        run = uuid.uuid4().hex[:8]
        staged: set[int] = set()
        try:
            total = await self._stage_full(name, chunks, run, staged)
        except BaseException:
            # Interrupted (Ctrl-C, a file that turns out unreadable, Redis lost): the list is
            # untouched, and the staged copies (1.25 MB per area code) must not stay in Redis.
            with contextlib.suppress(Exception):
                await self._drop_staged(name, run)
            raise
        pipe = self.redis.pipeline(transaction=False)
        for npa in sorted(staged):
            pipe.rename(self._staging(name, npa, run), self.list_key(name, npa))
        await pipe.execute()
        await self.set_list_date(name, list_date, total)
        return ImportResult(name, total, len(staged), stats.rejected if stats else 0, list_date.isoformat())

    async def _drop_staged(self, name: str, run: str) -> None:
        # Found by name, not from what this run believes it wrote: an interrupted pipeline's
        # commands already sent are still carried out by Redis, a moment after the interruption
        # (so a second pass, once they have been).
        for pause in (0.0, 0.25):
            await asyncio.sleep(pause)
            match = f"{self.prefix}dnc:{name}:*:import:{run}*"
            keys = [key async for key in self.redis.scan_iter(match=match, count=1000)]
            if keys:
                await self.redis.delete(*keys)

    async def _stage_full(self, name: str, chunks: Iterable[npt.NDArray[np.int64]], run: str, staged: set[int]) -> int:
        """Write `chunks` into this run's staging keys (`staged`: their area codes); the count."""
        total = 0
        if name in SET_LISTS:
            for chunk in chunks:
                total += len(chunk)
                pipe = self.redis.pipeline(transaction=False)
                for npa in np.unique(chunk // 10**7):
                    locals_ = (chunk[chunk // 10**7 == npa] % 10**7).tolist()
                    pipe.sadd(self._staging(name, int(npa), run), *[str(x) for x in locals_])
                    staged.add(int(npa))
                await pipe.execute()
        else:
            buffers: dict[int, npt.NDArray[np.uint8]] = {}
            for chunk in chunks:
                total += len(chunk)
                npas = chunk // 10**7
                offsets = chunk % 10**7
                order = np.argsort(npas, kind="stable")
                npas, offsets = npas[order], offsets[order]
                boundaries = np.flatnonzero(np.diff(npas)) + 1
                for group_npas, group_offsets in zip(np.split(npas, boundaries), np.split(offsets, boundaries), strict=True):
                    npa = int(group_npas[0])
                    bitmap = buffers.setdefault(npa, np.zeros(BITMAP_BYTES, dtype=np.uint8))
                    # Redis bit 0 is the most significant bit of byte 0.
                    np.bitwise_or.at(bitmap, group_offsets >> 3, (0x80 >> (group_offsets & 7)).astype(np.uint8))
                if len(buffers) >= FLUSH_NPAS:
                    await self._merge_bitmaps(name, buffers, run, staged)
            await self._merge_bitmaps(name, buffers, run, staged)
        return total

    async def _merge_bitmaps(self, name: str, buffers: dict[int, npt.NDArray[np.uint8]], run: str, staged: set[int]) -> None:
        for npa, bitmap in buffers.items():
            target = self._staging(name, npa, run)
            if npa in staged:
                part = f"{target}:part"
                pipe = self.redis.pipeline(transaction=False)
                pipe.set(part, bitmap.tobytes())
                pipe.bitop("OR", target, target, part)
                pipe.delete(part)
                await pipe.execute()
            else:
                staged.add(npa)  # before the write: an interrupted write may still land, and is cleaned up
                await self.redis.set(target, bitmap.tobytes())
        buffers.clear()

    def _staging(self, name: str, npa: int, run: str) -> str:
        return f"{self.list_key(name, npa)}:import:{run}"

    async def apply_changes(self, name: str, changes: Iterable[Sequence[tuple[int, bool]]], list_date: date) -> tuple[int, int]:
        """Apply a change list's additions and deletions; returns (added, deleted)."""
        check_list_name(name)
        added = deleted = 0
        for batch in changes:
            pipe = self.redis.pipeline(transaction=False)
            for number, is_addition in batch:
                npa, local = divmod(number, 10**7)
                key = self.list_key(name, npa)
                if name in SET_LISTS:
                    if is_addition:
                        pipe.sadd(key, str(local))
                    else:
                        pipe.srem(key, str(local))
                else:
                    pipe.setbit(key, local, 1 if is_addition else 0)
                added += is_addition
                deleted += not is_addition
            await pipe.execute()
        await self.set_list_date(name, list_date)
        return added, deleted


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
