"""`dialer evidence`: the audit-defense packet (docs/evidence.md).

    dialer evidence --lead ID | --phone NUMBER | --call ID [--from T] [--to T] --out FILE.zip
                    [--legal-hold REASON] [--by NAME] [--without-audio]
    dialer evidence verify FILE.zip [--public-key PEM]

Making a packet is itself audited: the packet and every recording handed out in it are written
through an outbox of the command's own (`DIALER_STATE_DIR/outbox-evidence-cli.sqlite3`, so it
works while `dialer serve` owns the main one) before the command returns.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import getpass
from pathlib import Path

from crm_bridge.audit_log import chain_signed
from crm_bridge.outbox import Outbox, OutboxError
from crm_bridge.pg import connect
from dialer.cli import UserError
from dialer.commands import COMMAND_OUTBOX_LOCK_WAIT, EVIDENCE_OUTBOX
from dialer.commands.audit import read_public_keys, run_database_step, signing_key
from dialer.settings import from_environment
from evidence.model import SubjectNotFound
from evidence.packet import OpenAudio
from evidence.recordings import LifecycleLegalHolds, recording_audio
from evidence.service import BuiltPacket, EvidenceService, LegalHoldRequest, Requester
from evidence.subject import SubjectError, parse_time, subject_from
from evidence.verify import verify_packet
from recordings.crypto import Keyring, RecordingCryptoError
from recordings.reader import RecordingReader


def _make(args: argparse.Namespace) -> int:
    settings = from_environment()
    dsn = settings.pg_dsn
    try:
        subject = subject_from(lead_id=args.lead, phone=args.phone, call_id=args.call,
                               start=parse_time(args.start, "--from"), end=parse_time(args.end, "--to"))
    except SubjectError as error:
        raise UserError(str(error)) from None
    out = Path(args.out)
    if out.suffix.lower() != ".zip":
        raise UserError(f"--out must name a .zip file, not {out.name}")
    if not out.parent.is_dir():
        raise UserError(f"the folder {out.parent} does not exist")
    open_audio: OpenAudio | None = None
    if not args.without_audio:
        try:
            reader = RecordingReader(settings.recordings_dir, Keyring.load(settings.recording_keys_dir))
        except RecordingCryptoError as error:
            raise UserError(f"{error}: the recordings cannot be opened; pass --without-audio to make the packet "
                            "without them") from None
        open_audio = functools.partial(recording_audio, reader)

    by = args.by or f"cli:{getpass.getuser()}"
    requester = Requester(by, "admin", "cli")
    hold = None if args.legal_hold is None else LegalHoldRequest(by, args.legal_hold)

    async def run() -> BuiltPacket:
        conn = await connect(dsn)
        try:
            key = signing_key(settings, await chain_signed(conn))
        finally:
            await conn.close()
        service = EvidenceService(dsn, key, open_audio, LifecycleLegalHolds())
        built = await service.build(subject, out, requester, hold)
        try:
            async with Outbox(settings.state_dir, dsn, name=EVIDENCE_OUTBOX, lock_wait=COMMAND_OUTBOX_LOCK_WAIT) as outbox:
                await outbox.put_many(built.audit_records)
                await outbox.flush(10)
        except OutboxError as error:
            await asyncio.to_thread(out.unlink, missing_ok=True)  # no unaudited packet leaves
            raise UserError(f"{error}: the packet was not kept") from None
        except BaseException:
            # Ctrl-C (or any failure) before its audit rows are durable: not kept either.
            await asyncio.to_thread(out.unlink, missing_ok=True)
            raise
        return built

    try:
        built = run_database_step(run, dsn)
    except SubjectNotFound as error:
        raise UserError(str(error), exit_code=1) from None
    summary = built.data
    print(f"wrote {out} ({built.written.files} files, packet {built.packet_id}): {len(summary.calls)} call(s), "
          f"{len(summary.decisions)} gate decision(s), {len(summary.recordings)} recording(s), "
          f"{len(summary.opt_outs)} opt-out(s), {len(summary.entries)} audit-trail entries; signed with key "
          f"{signing_key(settings, True).key_id}")
    problems = [name for name in (built.written.recording_ids or ()) if name not in built.written.audio_bytes]
    if problems:
        print(f"warning: {len(problems)} recording(s) could not be opened and are described, not included: "
              f"{', '.join(problems)}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a packet: give the packet's FILE.zip")
    if not path.is_file():
        raise UserError(f"no file {path}")
    check = verify_packet(path, read_public_keys(args.public_key))
    if not check.ok:
        print(f"{path}: NOT VERIFIED")
        for problem in check.problems:
            print(f"  - {problem}")
        return 1
    print(f"{path}: verified")
    print("It proves:")
    for line in check.proves():
        print(f"  - {line}")
    print("It does not prove:")
    for line in check.does_not_prove():
        print(f"  - {line}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evidence = subparsers.add_parser("evidence", help="the audit-defense packet for a lead, a number or a call")
    evidence.add_argument("--lead", help="a lead id")
    evidence.add_argument("--phone", help="a phone number (any US format)")
    evidence.add_argument("--call", help="a call id")
    evidence.add_argument("--from", dest="start", help="contacts at or after this ISO-8601 time")
    evidence.add_argument("--to", dest="end", help="contacts before this ISO-8601 time")
    evidence.add_argument("--out", help="the packet to write (FILE.zip)")
    evidence.add_argument("--legal-hold", metavar="REASON",
                          help="place a legal hold on every recording the packet covers, for this reason")
    evidence.add_argument("--by", help="who asks (default cli:<user>)")
    evidence.add_argument("--without-audio", action="store_true",
                          help="describe the recordings without their audio (when the keyring is not on this host)")
    evidence.set_defaults(handler=_dispatch)
    actions = evidence.add_subparsers(dest="evidence_command", metavar="ACTION")
    verify = actions.add_parser("verify", help="check a packet offline: signature, file hashes, chain entries")
    verify.add_argument("file", help="the packet (FILE.zip)")
    verify.add_argument("--public-key", type=Path, action="append", help="the agency's public audit key (PEM)")
    verify.set_defaults(handler=_verify)


def _dispatch(args: argparse.Namespace) -> int:
    if not args.out:
        raise UserError("give --out FILE.zip (and one of --lead, --phone, --call), or `dialer evidence verify FILE.zip`")
    return _make(args)
