"""The batch scrub against a real Redis agrees with the store's one-number look-ups, whether it
fetches whole area-code bitmaps or asks for single bits."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
import redis.asyncio as aioredis

from compliance_rules import batch
from compliance_rules.numbers import parse_number
from compliance_rules.scrub import BatchScrubber
from compliance_rules.store import DncStore
from tests.compliance.helpers import BOOK

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.mark.parametrize("bitmap_min_numbers", [1, 10**9])  # every bitmap fetched / only bits asked
async def test_batch_hits_equal_single_lookups(
    redis_client: aioredis.Redis, redis_prefix: str, bitmap_min_numbers: int
) -> None:
    store = DncStore(redis_client, redis_prefix)
    rng = np.random.default_rng(5)
    npas = np.array([212, 214, 305, 469, 718, 972])
    numbers = np.unique(rng.choice(npas, 3000) * 10**7 + rng.integers(2_000_000, 10**7, 3000)).astype(np.int64)
    numbers = numbers[batch.classify(numbers).ok]
    pick = lambda share: numbers[rng.random(len(numbers)) < share]  # noqa: E731
    await store.import_full("federal", [pick(0.3)], date(2026, 11, 1))
    await store.import_full("state:TX", [pick(0.2)], date(2026, 10, 1))
    await store.import_full("state:FL", [pick(0.2)], date(2026, 10, 1))
    for name in ("internal", "litigator", "optout"):
        await store.import_full(name, [pick(0.05)], date(2026, 11, 20))
    located = batch.locate(numbers, np.full(len(numbers), -1, dtype=np.int32), np.full(len(numbers), -1, dtype=np.int8))
    # Some leads say they live in Florida: its list then applies to their numbers too.
    florida = rng.random(len(numbers)) < 0.1
    states = located.states | np.where(florida, np.uint64(1 << batch.STATE_BIT["FL"]), np.uint64(0))

    hits = await BatchScrubber(store, BOOK, bitmap_min_numbers=bitmap_min_numbers).scrub(numbers, states)

    for index, number in enumerate(numbers.tolist()):
        info = parse_number(f"+1{number}")
        assert hits.federal[index] == await store.contains("federal", info)
        for name, found in (("internal", hits.internal), ("litigator", hits.litigator), ("optout", hits.optout)):
            assert found[index] == await store.contains(name, info)
        lead_states = set(batch.states_of(int(states[index])))
        for state in ("TX", "FL"):
            expected = state in lead_states and await store.contains(f"state:{state}", info)
            assert bool(hits.states.get(state, np.zeros(len(numbers), dtype=bool))[index]) == expected
    assert hits.list_dates["federal"] == "2026-11-01" and hits.list_dates["state:TX"] == "2026-10-01"
    if bitmap_min_numbers == 1:
        assert hits.stats.bitmaps_fetched > 0 and hits.stats.bits_asked == 0
    else:
        assert hits.stats.bitmaps_fetched == 0 and hits.stats.bits_asked > 0
