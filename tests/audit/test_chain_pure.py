"""The chain's pure parts: canonical bytes, links, and the first break named for every kind of
tampering with a run of entries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_bridge.audit_chain import (
    DECISION_CHAIN,
    ZERO_HASH,
    ChainFormatError,
    Entry,
    Link,
    canonical,
    canonical_row,
    check_run,
    checkpoint_statement,
    json_value,
    new_entry,
    statement_heads,
)

pytestmark = pytest.mark.timeout(30)
T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


def _chain(count: int, chain: str = "opt_out") -> list[Entry]:
    entries: list[Entry] = []
    prev = ZERO_HASH
    for seq in range(1, count + 1):
        row = canonical({"opt_out_id": f"o{seq}", "phone": "+12125550100"}).decode()
        entry = new_entry(chain, seq, f"o{seq}", T0 + timedelta(seconds=seq), f"src:{seq}", row, prev)
        entries.append(entry)
        prev = entry.entry_hash
    return entries


def test_canonical_json_is_rfc_8785() -> None:
    # Keys sorted by code point, no whitespace, shortest numbers, UTF-8 kept as is.
    assert canonical({"b": 1.50, "a": [True, None, "é"], "c": 2.0}) == '{"a":[true,null,"é"],"b":1.5,"c":2}'.encode()


def test_postgres_values_become_plain_json_the_same_way_every_time() -> None:
    decision_id = uuid.uuid4()
    row = {"decision_id": decision_id, "decided_at": datetime(2026, 11, 24, 9, 30, tzinfo=UTC).astimezone(),
           "phone": "+12125550100", "lead_id": None, "campaign_id": "c", "purpose": "telemarketing", "allowed": True,
           "reasons": "[]", "timezones": '["America/New_York"]', "local_times": "[]",
           "data_versions": '{"rules": "2026-11-23 sha256:abc"}', "notices": "[]",
           "channel": "voice", "text_kind": None}
    text = canonical_row(DECISION_CHAIN, row)
    assert f'"decision_id":"{decision_id}"' in text and '"decided_at":"2026-11-24T09:30:00Z"' in text
    assert '"timezones":["America/New_York"]' in text  # jsonb text parsed, not quoted
    assert json_value(Decimal("0.0300")) == "0.0300" and json_value(2**60) == str(2**60)
    with pytest.raises(ChainFormatError):
        json_value(datetime(2026, 1, 1))  # a timestamp without a zone is ambiguous


def test_an_intact_run_reaches_the_last_hash() -> None:
    entries = _chain(5)
    head, last, broken = check_run("opt_out", entries, start_seq=1, start_prev=ZERO_HASH)
    assert (head, last, broken) == (entries[-1].entry_hash, 5, None)


def test_an_edited_entry_is_named() -> None:
    entries = _chain(5)
    edited = Entry(**{**entries[2].__dict__, "row_json": entries[2].row_json.replace("0100", "0199")})
    _, last, broken = check_run("opt_out", [*entries[:2], edited, *entries[3:]], start_seq=1, start_prev=ZERO_HASH)
    assert broken is not None and (broken.seq, broken.problem, last) == (3, "edited", 2)


def test_a_deleted_entry_is_named() -> None:
    entries = _chain(5)
    _, _, broken = check_run("opt_out", [*entries[:3], *entries[4:]], start_seq=1, start_prev=ZERO_HASH)
    assert broken is not None and (broken.seq, broken.problem) == (4, "missing")
    assert "entry 4 is missing" in broken.sentence()


def test_reordered_entries_are_named() -> None:
    entries = _chain(5)
    # Renumbered so the sequence looks whole: the first moved entry no longer follows its predecessor.
    swapped = [entries[0], Entry(**{**entries[2].__dict__, "seq": 2}), Entry(**{**entries[1].__dict__, "seq": 3}),
               *entries[3:]]
    _, _, broken = check_run("opt_out", swapped, start_seq=1, start_prev=ZERO_HASH)
    assert broken is not None and broken.seq == 2 and broken.problem == "relinked"
    # Left with their own numbers, out of order.
    _, _, broken = check_run("opt_out", [entries[0], entries[2], entries[1]], start_seq=1, start_prev=ZERO_HASH)
    assert broken is not None and broken.problem == "missing" and broken.seq == 2


def test_redacted_links_carry_the_chain_without_the_rows() -> None:
    entries = _chain(6)
    mixed: list[Entry | Link] = [entries[0], Link(2, entries[1].body_hash), Link(3, entries[2].body_hash), entries[3],
                                 Link(5, entries[4].body_hash), entries[5]]
    head, _, broken = check_run("opt_out", mixed, start_seq=1, start_prev=ZERO_HASH)
    assert broken is None and head == entries[-1].entry_hash
    # A forged link body lands on another head: the caller's checkpoint comparison catches it.
    forged = [*mixed[:4], Link(5, "0" * 64), mixed[5]]
    head, _, broken = check_run("opt_out", forged, start_seq=1, start_prev=ZERO_HASH)
    assert broken is not None and broken.seq == 6 and broken.problem == "relinked"


def test_checkpoint_statements_round_trip() -> None:
    entries = _chain(3)
    from crm_bridge.audit_chain import Head

    text = checkpoint_statement({"opt_out": Head(3, entries[-1].entry_hash)}, T0, "k1")
    signed_at, heads = statement_heads(text)
    assert signed_at == "2026-11-24T14:30:00Z" and heads["opt_out"] == Head(3, entries[-1].entry_hash)
    with pytest.raises(ChainFormatError):
        statement_heads('{"format": "something else"}')


@given(st.recursive(st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
                    max_leaves=20))
def test_canonical_form_is_stable_through_a_json_round_trip(value: object) -> None:
    import json

    assert canonical(json.loads(canonical(value))) == canonical(value)
