"""The `dialer` console command.

Each feature module contributes its subcommands through a `register(subparsers)` function;
this file only wires them together and turns expected failures into one clear sentence and a
non-zero exit.

Command modules are imported lazily: only the module of the command asked for (`dialer db
migrate` imports `dialer.commands.db`, nothing else), and none for `dialer --help`. So
`COMMANDS` names each top-level command with its one-line help and its module; a test checks the
table against what the modules register (tests/foundation/test_cli.py).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from dialer.logs import command_log_level, configure_logging


class UserError(Exception):
    """A problem the user can fix; printed as one sentence, exit status 2 unless given."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _CommandModule(Protocol):
    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


class Command(NamedTuple):
    name: str
    help: str
    module: str  # defines register(subparsers); every subcommand sets `handler` (args -> exit code)


# In the order `dialer --help` lists them (each module's commands together, as it registers them).
COMMANDS: tuple[Command, ...] = (
    Command("stack", "bring the local PostgreSQL, Redis and Asterisk up or down", "dialer.commands.stack"),
    Command("asterisk", "the development Asterisk instance", "dialer.commands.stack"),
    Command("demo", "the main job: a predictive demo campaign on the real stack", "dialer.demo"),
    Command("serve", "run the HTTP API (stops cleanly on SIGTERM/SIGINT)", "dialer.commands.serve"),
    Command("simulate", "simulate a call center under a pacing policy", "dialer.commands.simulate"),
    Command("db", "CRM database schema (PostgreSQL)", "dialer.commands.db"),
    Command("check", "ask the compliance gate whether a number may be contacted now", "dialer.commands.dnc"),
    Command("dnc", "manage Do Not Call lists and opt-outs in Redis", "dialer.commands.dnc"),
    Command("recording", "archived call recordings (sealed at rest)", "dialer.commands.recording"),
    Command("agent", "agents: create, list, update, disable, enable; sessions on a running dialer (login, pause, ...)",
            "dialer.commands.agents"),
    Command("campaign", "campaigns: create, list, update, lists; on a running dialer: start, stop, status",
            "dialer.commands.agents"),
    Command("lists", "lead lists (create, add leads; assign with 'dialer campaign')", "dialer.commands.admin"),
    Command("token", "API bearer tokens (stored hashed)", "dialer.commands.admin"),
    Command("webhook", "webhook subscriptions: events pushed to the CRM (docs/webhooks.md)", "dialer.commands.admin"),
    Command("changes", "the audit of an agent, campaign, list, token or webhook", "dialer.commands.admin"),
    Command("leads", "lead lists: import a CSV file, scrubbed, into the CRM", "dialer.commands.leads"),
    Command("audit", "the tamper-evident audit trail: verify, checkpoint, key", "dialer.commands.audit"),
    Command("evidence", "the audit-defense packet for a lead, a number or a call", "dialer.commands.evidence"),
    Command("config", "the configuration file: init, check, a development certificate", "dialer.commands.config"),
    Command("install", "run as a service: systemd units, a user, PHI permissions", "dialer.commands.install"),
    Command("backup", "back up the CRM database, the recordings keyring and the recordings manifest into one "
            "file", "dialer.commands.backup"),
    Command("restore", "restore a backup into a fresh database and check it", "dialer.commands.backup"),
    Command("user", "people who sign in to the consoles (passwords hashed with argon2id)", "dialer.commands.users"),
)
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(command.module for command in COMMANDS))

Handler = Callable[[argparse.Namespace], int]


def _asked(argv: Sequence[str]) -> str | None:
    """The command word of `argv` (the first argument that is not an option), if any."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None, *, load: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv`: the module of the command asked for registers its commands in full;
    every other command is a placeholder with its help line (`dialer --help` lists them all, and
    `dialer other ...` still parses: its module is loaded when it is the one asked). `load`
    names modules to register in full whatever is asked (None: just the asked command's)."""
    parser = argparse.ArgumentParser(
        prog="dialer",
        description="Compliance-first dialer engine for Asterisk 22 (ARI).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress as well as warnings")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    asked = _asked(sys.argv[1:] if argv is None else argv)
    loaded = set(load if load is not None else
                 [command.module for command in COMMANDS if command.name == asked])
    registered: set[str] = set()
    for command in COMMANDS:
        if command.module in loaded:
            if command.module not in registered:
                module: _CommandModule = importlib.import_module(command.module)
                module.register(subparsers)
                registered.add(command.module)
        else:
            subparsers.add_parser(command.name, help=command.help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # here, where a closed pipe can still be caught (not at the interpreter's exit)
    except BrokenPipeError:
        # `dialer dnc status | head`: the reader left; what is left unsaid goes nowhere, quietly
        # (the interpreter would otherwise print a traceback, and another flushing stdout at exit).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    from dialer.settings import Settings, SettingsError, from_environment  # not needed for --help

    try:
        # `dialer config init` writes the file the settings would be read from.
        settings = from_environment() if getattr(args, "needs_settings", True) else Settings()
        configure_logging(command_log_level(settings.log_level, args.command, args.verbose), settings.log_format)
        return handler(args)
    except (UserError, SettingsError) as error:
        print(f"dialer: {error}", file=sys.stderr)
        return error.exit_code if isinstance(error, UserError) else 2
    except KeyboardInterrupt:
        # Ctrl-C: the command stopped where it was. Its writes are each all-or-nothing (an
        # import is one transaction, a DNC list copy is renamed in only when complete, files are
        # written aside and renamed), so this one sentence is all there is to say.
        print("dialer: interrupted (Ctrl-C) before the command finished.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
