"""`dialer recording open FILE --out OUT.wav`: the audio of an archived (sealed) recording."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import structlog

from dialer.cli import UserError
from dialer.settings import from_environment
from recordings.archive import archived_path, read_recording
from recordings.crypto import Keyring, RecordingCryptoError

log = structlog.get_logger(__name__)


def _open(args: argparse.Namespace) -> int:
    settings = from_environment()
    source = archived_path(args.file)
    if not source.is_file():
        raise UserError(f"No recording at {source}: give the path from the CRM's recordings.storage_uri.")
    try:
        audio = read_recording(source, Keyring.load(settings.recording_keys_dir))
    except RecordingCryptoError as error:
        raise UserError(str(error)) from None
    # Every playback of a recording is an access to ePHI: it is logged (45 CFR 164.312(b)).
    log.info("recording_opened", recording=source.name, out=args.out)
    if args.out == "-":
        sys.stdout.buffer.write(audio)
    else:
        Path(args.out).write_bytes(audio)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    recording = subparsers.add_parser("recording", help="archived call recordings (sealed at rest)")
    commands = recording.add_subparsers(dest="recording_command", metavar="ACTION", required=True)
    opener = commands.add_parser("open", help="write a recording's audio to a file ('-' for stdout)")
    opener.add_argument("file", help="the archived file: recordings.storage_uri (file://...) or its path")
    opener.add_argument("--out", required=True, help="where to write the WAV audio")
    opener.set_defaults(handler=_open)
