"""`dialer recording ...`: open, hold, purge, verify, and rotate the keys of the archive.

- `open FILE|URI|RECORDING_ID --out OUT [--format wav|opus|mp3] [--mix mono]`: the audio, after
  its `recording_accesses` row is kept (through the outbox) - every hand-out is audited.
- `hold RECORDING_ID --reason WHY [--by WHO]` / `release ...`: legal hold.
- `purge [--dry-run] [RECORDING_ID ...]`: expired recordings not under hold.
- `verify [--since DATE] [--json]`: re-read sealed files; missing, damaged, orphaned.
- `rotate-key [--retire]`: a new KEK; every data key re-wrapped (no audio rewritten).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import structlog

from dialer.cli import UserError
from dialer.commands import CLI_OUTBOX, COMMAND_OUTBOX_LOCK_WAIT
from dialer.settings import Settings, from_environment
from recordings.access import AccessChannel, access_record
from recordings.crypto import Keyring, RecordingCryptoError
from recordings.lifecycle import LifecycleError, purge, record_rotation, rotate_keys, set_legal_hold, verify
from recordings.reader import FileRef, RecordingReader, RecordingRef, RecordingUnavailable, representation
from recordings.storage import FILE_MODE, LocalStorage, file_uri_path, open_private, private_dirs
from recordings.transcode import AudioFormat, TranscodeError

log = structlog.get_logger(__name__)
T = TypeVar("T")


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def _keyring(settings: Settings) -> Keyring:
    try:
        return Keyring.for_archive(settings.recording_keys_dir, settings.recordings_dir) \
            if _has_keys(settings.recording_keys_dir) else Keyring.load(settings.recording_keys_dir)
    except RecordingCryptoError as error:
        raise UserError(str(error)) from None


def _has_keys(directory: Path) -> bool:
    return directory.is_dir() and any(directory.glob("*.key"))


async def _connect(settings: Settings) -> asyncpg.Connection:
    from crm_bridge.migrate import MigrationError, ensure_schema
    from crm_bridge.pg import DatabaseUnavailable, connect

    try:
        await ensure_schema(settings.pg_dsn)
        return await connect(settings.pg_dsn, connect_timeout=3.0)
    except (DatabaseUnavailable, MigrationError) as error:
        raise UserError(f"the CRM database is needed for this ({error})") from None


async def _with_db(settings: Settings, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    conn = await _connect(settings)
    try:
        return await work(conn)
    except (OSError, asyncpg.PostgresConnectionError) as error:
        raise UserError(f"lost the connection to PostgreSQL ({error}): check the server and retry") from None
    finally:
        await conn.close()


# -- open -----------------------------------------------------------------------------------------
def _looks_like_file(target: str) -> bool:
    return target.startswith("file://") or "/" in target or Path(target).exists()


async def _find(settings: Settings, target: str) -> tuple[RecordingRef, str | None, RecordingReader, Keyring]:
    keyring = _keyring(settings)
    if _looks_like_file(target):
        path = file_uri_path(target).expanduser().resolve()
        if not path.is_file():
            raise UserError(f"No recording at {path}: give the path from the CRM's recordings.storage_uri.")
        reader = RecordingReader(path.parent, keyring, LocalStorage(path.parent))
        return FileRef(path.name.split(".")[0], path.as_uri()), None, reader, keyring

    async def row(conn: asyncpg.Connection) -> Any:
        return await conn.fetchrow(
            "SELECT recording_id, call_id, storage_uri, sha256, format, purged_at FROM recordings "
            "WHERE recording_id = $1", target)

    found = await _with_db(settings, row)
    if found is None:
        raise UserError(f"No recording {target!r}: give its recording_id or the path of its file.")
    if found["purged_at"] is not None:
        raise UserError(f"{target} was purged at {found['purged_at'].isoformat()}: its audio no longer exists.")
    ref = FileRef(found["recording_id"], found["storage_uri"], found["sha256"].strip(), found["format"])
    return ref, found["call_id"], RecordingReader(settings.recordings_dir, keyring), keyring


async def _audit(settings: Settings, record: dict[str, object]) -> None:
    """Keep the access row durably (the CLI's own outbox) before any audio is written."""
    from crm_bridge.migrate import MigrationError, ensure_schema
    from crm_bridge.outbox import Outbox, OutboxError
    from crm_bridge.pg import DatabaseUnavailable

    try:
        await asyncio.wait_for(ensure_schema(settings.pg_dsn), 5.0)
    except (DatabaseUnavailable, MigrationError, TimeoutError, OSError):
        pass  # kept locally, delivered by the next run that reaches PostgreSQL
    try:
        async with Outbox(settings.state_dir, settings.pg_dsn, name=CLI_OUTBOX, connect_timeout=2.0,
                          lock_wait=COMMAND_OUTBOX_LOCK_WAIT) as outbox:
            await outbox.put("recording_access", record)
            if not await outbox.flush(3.0):
                print("dialer: PostgreSQL did not take the access record yet; it is kept, and sent when PostgreSQL "
                      "answers (by a running 'dialer serve', or the next command)", file=sys.stderr)
                await outbox.close(timeout=0.0)  # waited enough: not 5 s more on the way out
    except (OutboxError, OSError) as error:
        raise UserError(f"cannot keep the audit record of this access ({error}): nothing was opened") from None


def _write_out(destination: str, chunks: Iterator[bytes]) -> None:
    if destination == "-":
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return
    out = Path(destination).expanduser()
    private_dirs(out.parent)
    partial = out.with_name(out.name + ".partial")
    try:
        with os.fdopen(open_private(partial), "wb") as file:
            for chunk in chunks:
                file.write(chunk)
        partial.replace(out)
        os.chmod(out, FILE_MODE)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _open(args: argparse.Namespace) -> int:
    settings = from_environment()
    fmt = AudioFormat(args.format) if args.format else AudioFormat.WAV
    ref, call_id, reader, _ = asyncio.run(_find(settings, args.file))
    try:
        opened = reader.open(ref)
    except RecordingUnavailable as error:
        raise UserError(str(error)) from None
    with opened:
        shape = representation(opened, fmt, mix_to_mono=args.mix == "mono")
        try:
            opened.check()
        except RecordingUnavailable as error:
            raise UserError(str(error)) from None
        # Every playback of a recording is an access to ePHI (45 CFR 164.312(b)): audited first.
        asyncio.run(_audit(settings, access_record(
            ref.recording_id, call_id, channel=AccessChannel.CLI, role="operator", remote=_who(), size=shape.size,
            at=datetime.now(UTC))))
        try:
            _write_out(args.out, shape.chunks())
        except (RecordingUnavailable, RecordingCryptoError, TranscodeError) as error:
            raise UserError(f"could not write the audio: {error}") from None
        except OSError as error:
            raise UserError(f"cannot write {args.out} ({error.strerror})") from None
    log.info("recording_opened", recording=ref.recording_id, out=args.out, format=shape.format.value)
    return 0


# -- hold ------------------------------------------------------------------------------------------
def _hold(args: argparse.Namespace) -> int:
    settings = from_environment()
    held = args.recording_command == "hold"

    async def work(conn: asyncpg.Connection) -> None:
        await set_legal_hold(conn, args.recording_id, held=held, by=args.by or _who(), reason=args.reason,
                             now=datetime.now(UTC))

    try:
        asyncio.run(_with_db(settings, work))
    except LifecycleError as error:
        raise UserError(str(error)) from None
    print(f"{args.recording_id}: legal hold {'set' if held else 'released'}")
    return 0


# -- purge -----------------------------------------------------------------------------------------
def _purge(args: argparse.Namespace) -> int:
    settings = from_environment()
    try:
        now = datetime.fromisoformat(args.now) if args.now else datetime.now(UTC)
    except ValueError:  # was a traceback
        raise UserError(f"--now {args.now!r} is not an ISO-8601 time such as 2036-01-01T00:00Z") from None
    if now.tzinfo is None:
        raise UserError("--now needs a time zone (e.g. 2036-01-01T00:00Z)")
    if args.limit < 1:  # was PostgreSQL's "LIMIT must not be negative", as a traceback
        raise UserError(f"--limit must be at least 1, not {args.limit}")

    async def work(conn: asyncpg.Connection) -> Any:
        return await purge(conn, LocalStorage(settings.recordings_dir), now=now, by=args.by or _who(),
                           dry_run=args.dry_run, recording_ids=args.recording_ids or None, limit=args.limit)

    outcomes = asyncio.run(_with_db(settings, work))
    refused = [outcome for outcome in outcomes if outcome.refusal is not None]
    for outcome in outcomes:
        if outcome.refusal is not None:
            print(f"refused {outcome.recording_id}: {outcome.reason}")
        elif args.dry_run:
            print(f"would purge {outcome.recording_id}: {outcome.reason}")
        else:
            print(f"purged {outcome.recording_id}: {outcome.reason}")
    if not outcomes:
        print("nothing to purge")
    return 1 if refused else 0


# -- verify ----------------------------------------------------------------------------------------
def _verify(args: argparse.Namespace) -> int:
    settings = from_environment()
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            raise UserError("--since takes a date or time, e.g. 2026-01-01") from None
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
    reader = RecordingReader(settings.recordings_dir, _keyring(settings))

    async def work(conn: asyncpg.Connection) -> Any:
        return await verify(conn, reader, since=since)

    report = asyncio.run(_with_db(settings, work))
    figures = report.figures()
    if args.json:
        print(json.dumps({**figures, "problems": [vars(p) for p in report.problems]}, indent=2))
    else:
        print(f"checked {figures['checked']}: {figures['ok']} ok, {figures['missing']} missing, "
              f"{figures['damaged']} damaged, {figures['orphaned']} orphaned"
              + (f" ({figures['elsewhere']} rows name files outside this archive: not checked here)"
                 if report.elsewhere else ""))
        for problem in report.problems:
            print(f"  {problem.kind}: {problem.recording_id}: {problem.detail}")
    return 1 if report.problems else 0


# -- keys ------------------------------------------------------------------------------------------
def _rotate(args: argparse.Namespace) -> int:
    settings = from_environment()
    keyring = _keyring(settings)
    try:
        _, report = rotate_keys(LocalStorage(settings.recordings_dir), keyring, retire=args.retire)
    except RecordingCryptoError as error:
        raise UserError(str(error)) from None
    print(f"new key {report.new_kek_id}: {len(report.rewrapped)} data keys re-wrapped, no audio rewritten")
    if report.retired:
        print(f"retired (moved to {settings.recording_keys_dir / 'retired'}): {', '.join(report.retired)}")
    if report.kept_for_format1:
        print(f"kept for format-1 recordings: {', '.join(report.kept_for_format1)}")

    async def rows(conn: asyncpg.Connection) -> int:
        return await record_rotation(conn, report)

    try:
        print(f"{asyncio.run(_with_db(settings, rows))} recordings rows now name the new key")
    except UserError as error:
        print(f"dialer: the rows' encryption_key_id were not updated ({error}); the files are rotated", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    recording = subparsers.add_parser("recording", help="archived call recordings (sealed at rest)")
    commands = recording.add_subparsers(dest="recording_command", metavar="ACTION", required=True)

    opener = commands.add_parser("open", help="write a recording's audio to a file ('-' for stdout); audited")
    opener.add_argument("file", help="the recording: its recording_id, recordings.storage_uri (file://...) or path")
    opener.add_argument("--out", required=True, help="where to write the audio ('-' for stdout; a file is made 0600, its folders 0700)")
    opener.add_argument("--format", choices=[f.value for f in AudioFormat], help="audio format (default: wav)")
    opener.add_argument("--mix", choices=["mono"], help="mix a two-channel recording down to one channel")
    opener.set_defaults(handler=_open)

    for action, text in (("hold", "put a recording under legal hold: it is never purged until released"),
                         ("release", "release a recording's legal hold")):
        hold = commands.add_parser(action, help=text)
        hold.add_argument("recording_id")
        hold.add_argument("--reason", required=True, help="why (the matter, the request)")
        hold.add_argument("--by", help="who (default: this user@host)")
        hold.set_defaults(handler=_hold)

    purger = commands.add_parser("purge", help="delete recordings past their retention and not under legal hold")
    purger.add_argument("recording_ids", nargs="*", help="only these (each refused with its reason if it may not go)")
    purger.add_argument("--dry-run", action="store_true", help="list what would go; change nothing")
    purger.add_argument("--by", help="who (default: this user@host)")
    purger.add_argument("--now", help=argparse.SUPPRESS)
    purger.add_argument("--limit", type=int, default=1000, help="at most this many per run (default 1000)")
    purger.set_defaults(handler=_purge)

    verifier = commands.add_parser("verify", help="re-read sealed recordings; report missing, damaged, orphaned")
    verifier.add_argument("--since", help="only recordings made since this date (orphans: from that day's folder)")
    verifier.add_argument("--json", action="store_true", help="print the report as JSON")
    verifier.set_defaults(handler=_verify)

    rotate = commands.add_parser("rotate-key", help="new key-encryption key; re-wrap every data key")
    rotate.add_argument("--retire", action="store_true",
                        help="then move the old keys to retired/ (kept while format-1 recordings need them)")
    rotate.set_defaults(handler=_rotate)
