"""`dialer` imports only the module of the command asked for: the table of commands in
`dialer.cli` must say exactly what the modules register (names, help lines, order), and
`dialer --help` imports no command module at all."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dialer.cli import COMMAND_MODULES, COMMANDS, build_parser, main

REPO = Path(__file__).resolve().parents[2]


def test_the_table_is_what_the_modules_register_in_the_same_order() -> None:
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    registered = [(action.dest, action.help) for action in subparsers._choices_actions]
    assert registered == [(command.name, command.help) for command in COMMANDS]


def test_help_imports_no_command_module_and_a_command_only_its_own() -> None:
    probe = ("import json, sys; from dialer.cli import build_parser; build_parser(sys.argv[1:]); "
             "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('dialer.commands', 'dialer.demo', "
             "'aiohttp', 'asyncpg', 'numpy')))))")
    def loaded(*argv: str) -> list[str]:
        done = subprocess.run([sys.executable, "-c", probe, *argv], cwd=REPO, capture_output=True, text=True,
                              timeout=60, check=True)
        return list(json.loads(done.stdout))

    assert loaded("--help") == []
    assert [m for m in loaded("-v", "db", "status") if m.startswith("dialer.commands")] == [
        "dialer.commands", "dialer.commands.db"]


@pytest.mark.parametrize("command", [command.name for command in COMMANDS])
def test_every_command_still_parses_with_its_own_module(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        build_parser([command, "--help"]).parse_args([command, "--help"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: dialer {command}")


def test_no_command_prints_the_list_and_an_unknown_one_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "leads" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stopped:
        main(["nonsense"])
    assert stopped.value.code == 2 and "invalid choice: 'nonsense'" in capsys.readouterr().err
