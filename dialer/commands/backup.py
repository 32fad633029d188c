"""`dialer backup` / `dialer restore`: the CRM database, the recordings keyring, the recordings manifest.

A backup is one tar.gz file (mode 0600; it holds PHI and the keys that open the recordings):

| member | what |
|---|---|
| `MANIFEST.json` | format version, when, the database's row count per table, the keys' ids and SHA-256 |
| `crm.dump` | `pg_dump --format=custom` of the CRM database (no owners, no grants) |
| `keys/*.key` | the recordings keyring, each file with its modification time (the newest seals) |
| `sip-credentials.json` | the phones' SIP credentials, so desk phones and consoles keep working |
| `recordings-manifest.jsonl` | every `recordings` row: id, file (relative to the archive), SHA-256, key id, whether the file was there |

The recordings' audio is not in it: the archive is large, append-only and copied by other means
(rsync, object storage; docs/deploy.md). The manifest says which files a restored database
expects, and `restore` checks them and opens recordings to prove the keys fit.

`restore` refuses a database that already has tables (restore into a fresh one), and a key
whose file exists with other content; it then compares every table's row count with the
manifest's.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import asyncpg

from crm_bridge.pg import DatabaseUnavailable, connect, database_name, describe_server
from crm_bridge.store import CrmStore
from dialer.cli import UserError
from dialer.provision.credentials import write_private
from dialer.settings import Settings, from_environment
from recordings.archive import archived_path
from recordings.crypto import Keyring, RecordingCryptoError
from recordings.reader import RecordingReader, RecordingUnavailable

FORMAT = "dialer-backup/1"
ROOT = "dialer-backup"
# Recordings opened after a restore to prove the keys, the rows and the files fit together.
RECORDINGS_OPENED = 3


def pg_environment(dsn: str) -> dict[str, str]:
    """libpq variables for `dsn`: pg_dump and pg_restore get the password this way, never on their
    command line (where any user of the machine could read it in the process list)."""
    parts = urlsplit(dsn)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env.update({"PGHOST": parts.hostname or "127.0.0.1", "PGPORT": str(parts.port or 5432),
                "PGDATABASE": database_name(dsn)})
    if parts.username:
        env["PGUSER"] = unquote(parts.username)
    if parts.password:
        env["PGPASSWORD"] = unquote(parts.password)
    for option in parts.query.split("&"):
        key, _, value = option.partition("=")
        if key == "sslmode":
            env["PGSSLMODE"] = value
    return env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise UserError(f"{name} is not installed: run 'apt-get install postgresql-client' "
                        "(scripts/bootstrap.sh does this).")
    return path


async def _open(dsn: str, *, create: bool = False) -> asyncpg.Connection:
    try:
        return await connect(dsn, create_missing=create)
    except DatabaseUnavailable as error:
        raise UserError(str(error)) from None


async def table_counts(dsn: str) -> dict[str, int]:
    """Rows per table of the CRM (schema public), by table name."""
    connection = await _open(dsn)
    try:
        tables = [row["table_name"] for row in await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_type = 'BASE TABLE' ORDER BY table_name")]
        counts = {}
        for table in tables:
            quoted = '"' + table.replace('"', '""') + '"'
            counts[table] = int(await connection.fetchval(f"SELECT count(*) FROM {quoted}"))
        return counts
    finally:
        await connection.close()


async def recording_rows(dsn: str) -> list[asyncpg.Record]:
    connection = await _open(dsn)
    try:
        exists = await connection.fetchval("SELECT to_regclass('public.recordings') IS NOT NULL")
        return list(await connection.fetch(
            "SELECT recording_id, call_id, lead_id, storage_uri, sha256, size_bytes, encryption_key_id "
            "FROM recordings ORDER BY recorded_at, recording_id")) if exists else []
    finally:
        await connection.close()


def recordings_manifest(rows: list[asyncpg.Record], archive_dir: Path) -> list[dict[str, object]]:
    """One entry per recordings row: its file relative to the archive, and whether it is there."""
    archive = archive_dir.resolve()
    manifest = []
    for row in rows:
        path = archived_path(str(row["storage_uri"])).resolve()
        relative = str(path.relative_to(archive)) if path.is_relative_to(archive) else None
        manifest.append({
            "recording_id": row["recording_id"], "call_id": row["call_id"], "lead_id": row["lead_id"],
            "file": relative, "storage_uri": row["storage_uri"], "sha256": row["sha256"],
            "size_bytes": row["size_bytes"], "encryption_key_id": row["encryption_key_id"],
            "present": path.is_file(),
        })
    return manifest


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def _private_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="dialer-backup-") as name:
        path = Path(name)
        path.chmod(0o700)
        yield path


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: float | None = None) -> None:
    info = tarfile.TarInfo(f"{ROOT}/{name}")
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(mtime if mtime is not None else dt.datetime.now(dt.UTC).timestamp())
    tar.addfile(info, io.BytesIO(data))


@dataclass(frozen=True)
class BackupSummary:
    tables: int
    rows: int
    keys: int
    recordings: int


def backup(settings: Settings, out: Path) -> BackupSummary:
    """Write the backup file `out` (0600, atomically)."""
    if not out.parent.is_dir():  # said before the dump is made, not as a traceback after it
        raise UserError(f"The folder {out.parent} does not exist: give --out a file in an existing folder.")
    dump_tool = _tool("pg_dump")
    counts = asyncio.run(table_counts(settings.pg_dsn))
    manifest_rows = recordings_manifest(asyncio.run(recording_rows(settings.pg_dsn)), settings.recordings_dir)
    keys = sorted(settings.recording_keys_dir.glob("*.key"), key=lambda path: path.stat().st_mtime) \
        if settings.recording_keys_dir.is_dir() else []
    with _private_dir() as work:
        dump = work / "crm.dump"
        result = subprocess.run([dump_tool, "--format=custom", "--no-owner", "--no-privileges", "--file", str(dump)],
                                env=pg_environment(settings.pg_dsn), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise UserError(f"pg_dump of {database_name(settings.pg_dsn)} on {describe_server(settings.pg_dsn)} "
                            f"failed: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'no output'}.")
        manifest: dict[str, object] = {
            "format": FORMAT,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "database": database_name(settings.pg_dsn),
            "tables": counts,
            "keys": [{"file": key.name, "sha256": _sha256(key)} for key in keys],
            "recordings": len(manifest_rows),
            "recordings_present": sum(1 for row in manifest_rows if row["present"]),
            "recordings_dir": str(settings.recordings_dir),
        }
        partial = out.with_name(f".{out.name}.partial")
        try:
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as error:
            raise UserError(f"Cannot write {out} ({error.strerror}).") from None
        try:
            with os.fdopen(descriptor, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                _add_bytes(tar, "MANIFEST.json", json.dumps(manifest, indent=1).encode())
                _add_bytes(tar, "crm.dump", dump.read_bytes())
                for key in keys:
                    _add_bytes(tar, f"keys/{key.name}", key.read_bytes(), key.stat().st_mtime)
                if settings.sip_credentials_file.is_file():
                    _add_bytes(tar, "sip-credentials.json", settings.sip_credentials_file.read_bytes())
                _add_bytes(tar, "recordings-manifest.jsonl",
                           "".join(json.dumps(row) + "\n" for row in manifest_rows).encode())
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(partial, out)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return BackupSummary(len(counts), sum(counts.values()), len(keys), len(manifest_rows))


def _extract(archive: Path, into: Path) -> Path:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(into, filter="data")
    except FileNotFoundError:
        raise UserError(f"{archive} does not exist.") from None
    except (tarfile.TarError, OSError, EOFError) as error:
        raise UserError(f"{archive} is not a readable dialer backup ({error}).") from None
    root = into / ROOT
    try:
        manifest = json.loads((root / "MANIFEST.json").read_text())
    except (OSError, ValueError):
        raise UserError(f"{archive} has no MANIFEST.json: it is not a dialer backup.") from None
    if manifest.get("format") != FORMAT:
        raise UserError(f"{archive} is a backup of format {manifest.get('format')!r}; this dialer reads {FORMAT}.")
    return root


def _write_key(source: Path, target: Path) -> None:
    """`source`'s bytes (and time) to `target`, 0600 from the start and whole or not at all: an
    interrupted write left an empty key file, which the next restore refused as another key."""
    partial = target.with_name(f".{target.name}.partial")
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(source.read_bytes())
            out.flush()
            os.fsync(out.fileno())
        stamp = source.stat().st_mtime
        os.utime(partial, (stamp, stamp))
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _plan_keys(root: Path, keys_dir: Path) -> list[tuple[Path, Path]]:
    """(source, target) of each key to restore; UserError when a key file exists with other content."""
    copies = []
    for source in sorted((root / "keys").glob("*.key")):
        target = keys_dir / source.name
        if target.exists():
            if target.read_bytes() != source.read_bytes():
                raise UserError(f"{target} exists with other content: the keyring there is another one. Restore "
                                "into an empty DIALER_RECORDING_KEYS_DIR, or move that key aside first.")
            continue
        copies.append((source, target))
    return copies


async def _database_is_empty(dsn: str) -> bool:
    connection = await _open(dsn, create=True)
    try:
        return not await connection.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
    finally:
        await connection.close()


async def open_recordings(dsn: str, archive_dir: Path, keys_dir: Path, ids: list[str]) -> list[str]:
    """Open each recording as the API would (its row, its file, the keyring, its checksum);
    the problems, one sentence each."""
    if not ids:
        return []
    try:
        keyring = Keyring.load(keys_dir)
    except RecordingCryptoError as error:
        return [f"The restored keyring does not load: {error}."]
    reader = RecordingReader(archive_dir, keyring)
    store = await CrmStore.open(dsn)
    problems = []
    try:
        for recording_id in ids:
            recording = await store.get_recording(recording_id)
            if recording is None:
                problems.append(f"Recording {recording_id} has no row in the restored database.")
                continue
            try:
                reader.read(recording)
            except RecordingUnavailable as error:
                problems.append(f"Recording {recording_id} does not open: {error}.")
    finally:
        await store.close()
    return problems


def restore(settings: Settings, archive: Path, dsn: str) -> tuple[list[str], list[str]]:
    """Restore `archive` into the empty database `dsn` and the settings' keyring folder; returns
    (what was done, problems found while verifying), one sentence each."""
    restore_tool = _tool("pg_restore")
    done: list[str] = []
    with _private_dir() as work:
        root = _extract(archive, work)
        manifest = json.loads((root / "MANIFEST.json").read_text())
        keys = _plan_keys(root, settings.recording_keys_dir)
        if not asyncio.run(_database_is_empty(dsn)):
            raise UserError(f"The database {database_name(dsn)} on {describe_server(dsn)} already has tables: restore "
                            "into a new database (--pg-dsn .../dialer_restored) or drop it first.")
        # One transaction: a dump that fails halfway (damaged, or Ctrl-C) leaves the database
        # empty, so the restore can simply be run again (a half-restored one refused that).
        result = subprocess.run([restore_tool, "--no-owner", "--no-privileges", "--exit-on-error",
                                 "--single-transaction", "--dbname", database_name(dsn), str(root / "crm.dump")],
                                env=pg_environment(dsn), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise UserError(f"pg_restore into {database_name(dsn)} failed, and restored nothing: "
                            f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'no output'}.")
        expected: dict[str, int] = manifest["tables"]
        done.append(f"Database {database_name(dsn)}: {len(expected)} tables, {sum(expected.values())} rows restored.")
        if keys:
            settings.recording_keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for source, target in keys:
            _write_key(source, target)
        done.append(f"Recordings keyring: {len(keys)} key(s) written to {settings.recording_keys_dir} "
                    f"({len(manifest['keys']) - len(keys)} already there).")
        credentials = root / "sip-credentials.json"
        if credentials.is_file() and not settings.sip_credentials_file.exists():
            write_private(settings.sip_credentials_file, credentials.read_text())
            done.append(f"Phones' SIP credentials written to {settings.sip_credentials_file}.")
        rows = [json.loads(line) for line in (root / "recordings-manifest.jsonl").read_text().splitlines() if line]
    problems: list[str] = []
    counts = asyncio.run(table_counts(dsn))
    for table, count in sorted(expected.items()):
        if counts.get(table) != count:
            problems.append(f"Table {table} has {counts.get(table, 0)} rows after the restore, the backup had {count}.")
    archive_dir = settings.recordings_dir
    present = [row for row in rows if row["file"] and (archive_dir / row["file"]).is_file()]
    missing = len(rows) - len(present)
    done.append(f"Recordings: {len(present)} of {len(rows)} archived files are in {archive_dir}"
                + (f"; copy the other {missing} from the old archive." if missing else "."))
    problems += asyncio.run(open_recordings(dsn, archive_dir, settings.recording_keys_dir,
                                            [str(row["recording_id"]) for row in present[-RECORDINGS_OPENED:]]))
    if present and not problems:
        done.append(f"Opened {min(len(present), RECORDINGS_OPENED)} recording(s): keys, rows and files fit.")
    return done, problems


def _backup(args: argparse.Namespace) -> int:
    settings = from_environment()
    out: Path = args.out or Path(f"dialer-backup-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.tar.gz")
    summary = backup(settings, out)
    print(f"Backup written to {out} (0600): {summary.tables} tables, {summary.rows} rows, {summary.keys} key(s), "
          f"{summary.recordings} recordings in the manifest. It holds PHI and the keys to the recordings: "
          "store it encrypted.")
    return 0


def _restore(args: argparse.Namespace) -> int:
    settings = from_environment()
    done, problems = restore(settings, args.archive, args.pg_dsn or settings.pg_dsn)
    for line in done:
        print(line)
    for problem in problems:
        print(f"problem: {problem}")
    return 1 if problems else 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup_parser = subparsers.add_parser("backup", help="back up the CRM database, the recordings keyring and "
                                          "the recordings manifest into one file")
    backup_parser.add_argument("--out", type=Path, help="the file to write (default dialer-backup-TIME.tar.gz)")
    backup_parser.set_defaults(handler=_backup)
    restore_parser = subparsers.add_parser("restore", help="restore a backup into a fresh database and check it")
    restore_parser.add_argument("archive", type=Path)
    restore_parser.add_argument("--pg-dsn", help="the (new, empty) database to restore into (default: the settings')")
    restore_parser.set_defaults(handler=_restore)
