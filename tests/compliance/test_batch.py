"""The bulk look-ups agree with the gate's one-at-a-time rules: E.164 normalisation with
`parse_number`, classification with the shipped prefix table, location with `rules.locate`;
bitmap tests with Redis's bit order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance_rules import batch
from compliance_rules.location import centroids
from compliance_rules.model import ContactRequest, ReasonCode
from compliance_rules.numbers import data_version, npa_states, parse_number
from compliance_rules.rules import locate

pytestmark = pytest.mark.timeout(120)

NPAS = sorted(npa_states())
ZIPS = sorted(centroids()[1])[::53]


def test_prefix_table_was_built_from_the_installed_phonenumbers() -> None:
    # After a phonenumbers upgrade: python -m compliance_rules.tools.build_location_data --prefixes-only
    assert batch.prefix_table().source == data_version()


@settings(max_examples=2000, deadline=None)
@given(npa=st.integers(100, 999), nxx=st.integers(0, 999), line=st.integers(0, 9999))
def test_classification_agrees_with_parse_number(npa: int, nxx: int, line: int) -> None:
    number = npa * 10**7 + nxx * 10**4 + line
    info = parse_number.__wrapped__(f"+1{number}")
    found = batch.classify(np.array([number], dtype=np.int64))
    assert bool(found.ok[0]) == info.ok
    if info.ok:
        assert bool(found.geographic[0]) == info.geographic
        assert batch.states_of(int(found.states[0])) == tuple(sorted(info.npa_states))


def test_per_number_area_codes_and_edges() -> None:
    cases = ["+15235550142", "+15245500000", "+18005550142", "+19005550142", "+16135550142", "+12125550142",
             "+12121550142", "+15005550142"]
    numbers = np.array([int(c[2:]) for c in cases], dtype=np.int64)
    found = batch.classify(numbers)
    assert found.ok.tolist() == [parse_number(c).ok for c in cases]
    assert not batch.classify(np.array([batch.INVALID], dtype=np.int64)).ok[0]


SEPARATORS = st.sampled_from(["", " ", "-", ".", "(", ")", "  ", "\t", "/", "\u2013", "\u00a0", "+", ") ", "--"])


@settings(max_examples=1500, deadline=None)
@given(
    npa=st.sampled_from(NPAS), nxx=st.integers(0, 999), line=st.integers(0, 9999),
    prefix=st.sampled_from(["", "1", "+1", "+1 ", "1-", "+", "+2", "0"]),
    gaps=st.lists(SEPARATORS, min_size=3, max_size=3), suffix=st.sampled_from(["", " ", " x12", " ext. 7", "#"]),
)
def test_normalisation_agrees_with_parse_number(
    npa: int, nxx: int, line: int, prefix: str, gaps: list[str], suffix: str
) -> None:
    raw = f"{prefix}{gaps[0]}{npa}{gaps[1]}{nxx:03d}{gaps[2]}{line:04d}{suffix}"
    info = parse_number.__wrapped__(raw)
    national = batch.national_number(raw)
    valid = national != batch.INVALID and bool(batch.classify(np.array([national], dtype=np.int64)).ok[0])
    assert valid == info.ok, raw
    if info.ok:
        assert batch.e164(national) == info.e164


@settings(max_examples=1500, deadline=None)
@given(
    number=st.one_of(st.sampled_from(NPAS).map(lambda npa: npa * 10**7), st.just(8_000_000_000),
                     st.just(5_000_000_000)).flatmap(lambda base: st.integers(base + 2_000_000, base + 9_999_999)),
    zip_code=st.one_of(st.none(), st.sampled_from(ZIPS), st.sampled_from(["99999", "00001"])),
    state=st.one_of(st.none(), st.sampled_from(["NY", "TX", "FL", "AK", "GU", "PR"])),
)
def test_location_agrees_with_the_gate(number: int, zip_code: str | None, state: str | None) -> None:
    gate = locate(ContactRequest(f"+1{number}", zip_code=zip_code, state=state))
    found = batch.locate(
        np.array([number], dtype=np.int64),
        np.array([int(zip_code) if zip_code else -1], dtype=np.int32),
        np.array([batch.STATE_BIT[state] if state else -1], dtype=np.int8),
    )
    assert bool(found.ok[0]) == gate.number.ok
    if gate.number.ok:
        unknown = any(p.code is ReasonCode.UNKNOWN_LOCATION for p in gate.problems)
        assert bool(found.unknown_location[0]) == unknown
        assert set(batch.states_of(int(found.states[0]))) == set(gate.states)


def test_bits_use_redis_bit_order_and_short_or_absent_bitmaps_read_as_clear() -> None:
    bitmap = bytearray(2)
    bitmap[0] = 0b1000_0001  # offsets 0 and 7
    bitmap[1] = 0b0100_0000  # offset 9
    offsets = np.array([0, 1, 7, 8, 9, 15, 16, 9_999_999], dtype=np.int64)
    assert batch.bits_set(bytes(bitmap), offsets).tolist() == [True, False, True, False, True, False, False, False]
    assert not batch.bits_set(None, offsets).any()
    assert batch.members_in({b"5550142", b"junk"}, np.array([5550142, 5550143])).tolist() == [True, False]


def test_groups_by_area_code_keep_input_positions() -> None:
    numbers = np.array([3055550100, 2125550100, 3055550101, 2125550101, 7185550100], dtype=np.int64)
    groups = {npa: positions.tolist() for npa, positions in batch.group_by_npa(numbers)}
    assert groups == {212: [1, 3], 305: [0, 2], 718: [4]}
    assert batch.group_by_npa(np.zeros(0, dtype=np.int64)) == []
