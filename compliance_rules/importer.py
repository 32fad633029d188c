"""Parsing DNC files: registry area-code files and change lists (zipped, gzipped or plain).

Registry full lists hold one 10-digit number per line; some guides describe `areacode,number`
lines, so both are accepted (rules.md section 3). Change lists are comma-separated records with
the number and an add/delete indicator (layout unconfirmed [L]), parsed defensively. Lines that
cannot be read are counted and reported, never guessed.
"""

from __future__ import annotations

import gzip
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

import numpy as np
import numpy.typing as npt

Opener = Callable[[], IO[bytes]]
CHUNK_BYTES = 8 * 1024 * 1024
_FIRST_VALID = 2_000_000_000  # NANP area codes start with 2-9
_SEPARATORS = re.compile(rb"[,\-\.\(\) \t\r;|\"]")

Progress = Callable[[int], None]  # called with bytes consumed so far


class ImportFormatError(ValueError):
    """The file cannot be read as a DNC list (names the file and what is wrong)."""


@dataclass
class ParseStats:
    lines: int = 0
    rejected: int = 0
    rejected_examples: list[str] = field(default_factory=list)

    def reject(self, line: bytes) -> None:
        self.rejected += 1
        if len(self.rejected_examples) < 5:
            self.rejected_examples.append(line.decode(errors="replace")[:60])


@dataclass(frozen=True)
class Source:
    """An opened input with its size (compressed size for archives, for the progress bar)."""

    streams: tuple[Opener, ...]
    total_bytes: int


def open_source(path: Path) -> Source:
    """Open a plain, .gz or .zip file (every member of a zip is read, in order)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as probe:
            magic = probe.read(4)
    except OSError as error:
        raise ImportFormatError(f"cannot read {path}: {error.strerror}") from None
    if magic.startswith(b"PK\x03\x04"):
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise ImportFormatError(f"{path} looks like a zip file but cannot be opened") from None
        members = [info for info in archive.infolist() if not info.is_dir()]
        if not members:
            raise ImportFormatError(f"{path} is an empty zip file")
        total = sum(info.file_size for info in members)
        def member_opener(info: zipfile.ZipInfo) -> Opener:
            return lambda: archive.open(info)

        return Source(tuple(member_opener(info) for info in members), total)
    if magic.startswith(b"\x1f\x8b"):
        return Source((lambda: cast(IO[bytes], gzip.GzipFile(path, "rb")),), size)
    return Source((lambda: path.open("rb"),), size)


def _blocks(source: Source, progress: Progress | None) -> Iterator[bytes]:
    """Whole-line blocks of about CHUNK_BYTES from every stream of the source."""
    done = 0
    for opener in source.streams:
        with opener() as stream:
            carry = b""
            while True:
                block = stream.read(CHUNK_BYTES)
                if not block:
                    break
                done += len(block)
                block = carry + block
                cut = block.rfind(b"\n")
                if cut < 0:
                    carry = block
                    continue
                carry = block[cut + 1 :]
                yield block[: cut + 1]
                if progress:
                    progress(done)
            if carry:
                yield carry + b"\n"
    if progress:
        progress(source.total_bytes)


def _parse_slow(lines: list[bytes], stats: ParseStats) -> npt.NDArray[np.int64]:
    good: list[int] = []
    for line in lines:
        digits = _SEPARATORS.sub(b"", line)
        if len(digits) == 11 and digits.startswith(b"1"):
            digits = digits[1:]
        if len(digits) == 10 and digits.isdigit() and int(digits) >= _FIRST_VALID:
            good.append(int(digits))
        elif digits:
            stats.reject(line)
    return np.array(good, dtype=np.int64)


def parse_numbers_block(block: bytes, stats: ParseStats) -> npt.NDArray[np.int64]:
    """10-digit numbers in one block of lines (`NNNNNNNNNN` or `NNN,NNNNNNN`)."""
    cleaned = block.replace(b",", b"").replace(b"\r", b"")
    lines = cleaned.split()
    stats.lines += len(lines)
    if not lines:
        return np.empty(0, dtype=np.int64)
    raw = np.array(lines)
    if raw.dtype.itemsize == 10:
        try:
            values = raw.astype(np.int64)
        except ValueError:
            values = None
        if values is not None and bool((np.char.str_len(raw) == 10).all()) and bool((values >= _FIRST_VALID).all()):
            return values
    stats.lines -= len(lines)
    lines = [line for line in block.splitlines() if line.strip()]
    stats.lines += len(lines)
    return _parse_slow(lines, stats)


def iter_numbers(path: Path, stats: ParseStats, progress: Progress | None = None) -> Iterator[npt.NDArray[np.int64]]:
    """Arrays of 10-digit numbers (as integers) from a registry full-list file."""
    for block in _blocks(open_source(path), progress):
        values = parse_numbers_block(block, stats)
        if len(values):
            yield values


_ADD_WORDS = {b"a", b"add", b"added", b"addition", b"i", b"insert", b"+"}
_DELETE_WORDS = {b"d", b"del", b"delete", b"deleted", b"deletion", b"r", b"remove", b"removed", b"-"}


def parse_change_line(line: bytes) -> tuple[int, bool] | None:
    """`(number, added)` from a change-list record, or None when unreadable.

    Accepts `number,A|D[,date...]`, `areacode,number,A|D[,...]`, and the indicator first.
    """
    fields = [f.strip().strip(b'"').lower() for f in line.split(b",")]
    indicator: bool | None = None
    digits = b""
    for value in fields:
        if value in _ADD_WORDS and indicator is None:
            indicator = True
        elif value in _DELETE_WORDS and indicator is None:
            indicator = False
        elif len(digits) < 10 and value.isdigit() and len(digits) + len(value) <= 10:
            digits += value
    if indicator is None or len(digits) != 10 or int(digits) < _FIRST_VALID:
        return None
    return int(digits), indicator


def iter_changes(path: Path, stats: ParseStats, progress: Progress | None = None) -> Iterator[list[tuple[int, bool]]]:
    """Batches of `(number, added)` from a change list; a header line is skipped silently."""
    for block in _blocks(open_source(path), progress):
        batch: list[tuple[int, bool]] = []
        for line in block.splitlines():
            if not line.strip():
                continue
            stats.lines += 1
            record = parse_change_line(line)
            if record is None:
                if stats.lines == 1 and not any(ch.isdigit() for ch in line.decode(errors="replace")):
                    continue  # header
                stats.reject(line)
            else:
                batch.append(record)
        if batch:
            yield batch


class ProgressBar:
    """A one-line progress bar on a text stream (stderr), redrawn at most every 1%."""

    def __init__(self, total: int, stream: IO[str], label: str = "import") -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.label = label
        self._shown = -1

    def __call__(self, done: int) -> None:
        percent = min(100, done * 100 // self.total)
        if percent == self._shown:
            return
        self._shown = percent
        filled = percent * 30 // 100
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {percent:3d}%")
        if percent == 100:
            self.stream.write("\n")
        self.stream.flush()


