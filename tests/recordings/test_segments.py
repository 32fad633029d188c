"""The segmented sealed format: round trips, byte ranges, and every way a file can be damaged."""

from __future__ import annotations

import io
import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recordings.segments import OVERHEAD, SealedDamaged, SealedReader, SealingWriter

SEGMENT = 1024
KEY = bytes(range(32))


class Blob:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def read_at(self, offset: int, size: int) -> bytes:
        return self.data[offset : offset + size]


def seal(audio: bytes, recording_id: str = "call-1-recording", key: bytes = KEY, pieces: int = 7) -> bytes:
    out = io.BytesIO()
    writer = SealingWriter(out, key, recording_id, {"format": "opus", "channels": 2}, SEGMENT)
    step = max(1, len(audio) // pieces)
    for start in range(0, len(audio), step):
        writer.write(audio[start : start + step])
    writer.close()
    return out.getvalue()


def opened(blob: bytes, recording_id: str = "call-1-recording", key: bytes = KEY) -> SealedReader:
    return SealedReader(Blob(blob), key, recording_id)


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT, 3 * SEGMENT + 17])
def test_any_length_round_trips_and_hides_the_audio(size: int) -> None:
    audio = secrets.token_bytes(size)
    blob = seal(audio)
    reader = opened(blob)
    assert reader.size == size and b"".join(reader.iter_range()) == audio
    assert reader.metadata == {"format": "opus", "channels": 2}
    assert reader.segments == max(1, -(-size // SEGMENT))
    if size >= 64:
        assert audio[:64] not in blob


@settings(max_examples=200, deadline=None)
@given(size=st.integers(0, 5 * SEGMENT), data=st.data())
def test_a_byte_range_is_exactly_that_slice_of_the_audio(size: int, data: st.DataObject) -> None:
    audio = bytes(i % 251 for i in range(size))
    reader = opened(seal(audio))
    start = data.draw(st.integers(0, size))
    end = data.draw(st.integers(start, size + 10))
    assert b"".join(reader.iter_range(start, end)) == audio[start:end]


def test_a_range_decrypts_only_the_segments_it_covers() -> None:
    audio = secrets.token_bytes(10 * SEGMENT)
    blob = bytearray(seal(audio))
    # Damage segment 0: a range inside segment 5 still opens, the whole file does not.
    blob[len(blob) - 10 * (SEGMENT + OVERHEAD) + 20] ^= 1
    reader = opened(bytes(blob))
    assert b"".join(reader.iter_range(5 * SEGMENT + 3, 5 * SEGMENT + 100)) == audio[5 * SEGMENT + 3 : 5 * SEGMENT + 100]
    with pytest.raises(SealedDamaged, match="segment 0"):
        reader.verify()


@pytest.mark.parametrize("segment", range(4))
def test_a_flipped_byte_in_any_segment_is_detected_whole_and_by_range(segment: int) -> None:
    audio = secrets.token_bytes(3 * SEGMENT + 100)
    clean = seal(audio)
    header = len(clean) - 3 * (SEGMENT + OVERHEAD) - (100 + OVERHEAD)
    for offset in (0, 11, 12, 500 if segment < 3 else 60, (SEGMENT if segment < 3 else 100) + OVERHEAD - 1):
        blob = bytearray(clean)
        blob[header + segment * (SEGMENT + OVERHEAD) + offset] ^= 0x40
        reader = opened(bytes(blob))
        with pytest.raises(SealedDamaged):
            reader.verify()
        with pytest.raises(SealedDamaged):
            b"".join(reader.iter_range(segment * SEGMENT + 1, segment * SEGMENT + 2))


def test_truncation_reordering_renaming_and_the_wrong_key_are_all_refused() -> None:
    audio = secrets.token_bytes(3 * SEGMENT)
    blob = seal(audio)
    header = len(blob) - 3 * (SEGMENT + OVERHEAD)
    first, second = (blob[header + i * (SEGMENT + OVERHEAD) : header + (i + 1) * (SEGMENT + OVERHEAD)] for i in (0, 1))
    cases = {
        "cut at a segment boundary": blob[: header + 2 * (SEGMENT + OVERHEAD)],
        "cut inside a segment": blob[:-5],
        "segments swapped": blob[:header] + second + first + blob[header + 2 * (SEGMENT + OVERHEAD) :],
        "metadata changed": blob.replace(b'"opus"', b'"opuz"', 1),
    }
    for name, damaged in cases.items():
        with pytest.raises(SealedDamaged):
            opened(damaged).verify()
        assert name
    with pytest.raises(SealedDamaged):
        opened(blob, recording_id="call-2-recording").verify()
    with pytest.raises(SealedDamaged):
        opened(blob, key=bytes(32)).verify()
    with pytest.raises(SealedDamaged):
        opened(b"not sealed at all" * 10)


def test_an_unclosed_writer_leaves_a_file_that_does_not_open() -> None:
    out = io.BytesIO()
    writer = SealingWriter(out, KEY, "call-1-recording", {}, SEGMENT)
    writer.write(secrets.token_bytes(3 * SEGMENT + 5))  # crashed before close(): no last segment
    with pytest.raises(SealedDamaged):
        opened(out.getvalue()).verify()
