"""The `dialer` console command.

Each feature module contributes its subcommands through a `register(subparsers)`
function listed in `COMMAND_MODULES`; this file only wires them together and turns
expected failures into one clear sentence and a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Protocol

from dialer.logs import command_log_level, configure_logging
from dialer.settings import Settings, SettingsError, from_environment


class UserError(Exception):
    """A problem the user can fix; printed as one sentence, exit status 2 unless given."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _CommandModule(Protocol):
    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


# Each module defines register(subparsers); every subcommand sets `handler` (args -> exit code).
COMMAND_MODULES: tuple[str, ...] = (
    "dialer.commands.stack",
    "dialer.demo",
    "dialer.commands.serve",
    "dialer.commands.simulate",
    "dialer.commands.db",
    "dialer.commands.dnc",
    "dialer.commands.recording",
    "dialer.commands.agents",
    "dialer.commands.admin",
    "dialer.commands.leads",
    "dialer.commands.audit",
    "dialer.commands.evidence",
    "dialer.commands.config",
    "dialer.commands.install",
    "dialer.commands.backup",
    "dialer.commands.users",
)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dialer",
        description="Compliance-first dialer engine for Asterisk 22 (ARI).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress as well as warnings")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module: _CommandModule = importlib.import_module(name)
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        # `dialer config init` writes the file the settings would be read from.
        settings = from_environment() if getattr(args, "needs_settings", True) else Settings()
        configure_logging(command_log_level(settings.log_level, args.command, args.verbose), settings.log_format)
        return handler(args)
    except (UserError, SettingsError) as error:
        print(f"dialer: {error}", file=sys.stderr)
        return error.exit_code if isinstance(error, UserError) else 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
