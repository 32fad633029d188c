"""`dialer stack ...` subcommands (filled in by the provisioning module)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    del subparsers
