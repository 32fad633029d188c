"""`dialer audit verify|checkpoint|key`: the tamper-evident audit trail (docs/evidence.md).

- `verify [--since T] [--public-key PEM ...]` recomputes every chain and names the first broken
  link of each: an edited, deleted or reordered entry, a row edited, deleted or written outside
  the trail, a checkpoint that was altered. Exit 0 when every chain holds, 1 otherwise.
- `checkpoint` signs every chain's head now (`dialer serve` does it every minute).
- `key [--out FILE]` prints the signing key's fingerprint and writes its public half (PEM), the
  only thing a verifier needs.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from crm_bridge.audit_keys import AuditKeyError, AuditSigningKey, public_key_from_text
from crm_bridge.audit_log import AuditReport, chain_signed, sign_checkpoint, verify_trail
from crm_bridge.pg import DatabaseUnavailable, connect, describe_server
from dialer.cli import UserError
from dialer.settings import Settings, from_environment

T = TypeVar("T")


def run_database_step(make: Callable[[], Coroutine[Any, Any, T]], dsn: str) -> T:
    """Run one async step against PostgreSQL; database trouble becomes one sentence (exit 3)."""
    try:
        return asyncio.run(make())
    except DatabaseUnavailable as error:
        raise UserError(str(error), exit_code=3) from None
    except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as error:
        raise UserError(f"lost the connection to PostgreSQL at {describe_server(dsn)} ({error}): check the server "
                        "and retry", exit_code=3) from None
    except asyncpg.UndefinedTableError:
        raise UserError(f"the CRM database at {describe_server(dsn)} has no audit trail yet: run `dialer db migrate`",
                        exit_code=3) from None


def read_public_keys(paths: list[Path] | None) -> list[bytes]:
    keys = []
    for path in paths or []:
        try:
            keys.append(public_key_from_text(path.read_bytes()))
        except OSError as error:
            raise UserError(f"cannot read the public key {path}: {error.strerror}") from None
        except AuditKeyError as error:
            raise UserError(f"{path}: {error}") from None
    return keys


def signing_key(settings: Settings, signed: bool) -> AuditSigningKey:
    try:
        return AuditSigningKey.load_or_create(settings.audit_keys_dir, chain_signed=signed)
    except AuditKeyError as error:
        raise UserError(str(error)) from None


def _print_report(report: AuditReport) -> None:
    for chain in report.chains:
        if chain.entries == 0 and chain.head is None and chain.broken is None:
            continue
        head = f"head {chain.head.seq} ({chain.head.entry_hash[:12]}...)" if chain.head else "no entry"
        older = f", {chain.rows_before_trail} row(s) older than the trail (not covered)" if chain.rows_before_trail else ""
        state = "BROKEN" if chain.broken else "intact"
        print(f"chain {chain.chain}: {chain.entries} entries checked from {chain.checked_from}, {head}, "
              f"{chain.checkpoints} signed checkpoint(s), {chain.rows_checked} rows compared{older}: {state}")
    if report.untrusted_checkpoints:
        print(f"{report.untrusted_checkpoints} checkpoint(s) signed by a key you did not trust were ignored")
    for chain in report.chains:
        if chain.broken is not None:
            print(f"BROKEN: {chain.broken.sentence()}")


def _verify(args: argparse.Namespace) -> int:
    settings = from_environment()
    dsn = args.dsn or settings.pg_dsn
    trusted = read_public_keys(args.public_key)
    if not trusted:
        try:
            trusted = [AuditSigningKey.load(settings.audit_keys_dir).public_key]
        except AuditKeyError as error:
            raise UserError(f"{error}; or pass --public-key with the agency's published public key") from None

    async def run() -> AuditReport:
        conn = await connect(dsn)
        try:
            return await verify_trail(conn, trusted_keys=trusted, since=args.since)
        finally:
            await conn.close()

    report = run_database_step(run, dsn)
    _print_report(report)
    if report.ok:
        print("every chain holds: no audited row or entry was edited, deleted, reordered or added outside the trail")
        return 0
    return 1


def _checkpoint(args: argparse.Namespace) -> int:
    settings = from_environment()
    dsn = args.dsn or settings.pg_dsn

    async def run() -> str:
        conn = await connect(dsn)
        try:
            key = signing_key(settings, await chain_signed(conn))
            checkpoint = await sign_checkpoint(conn, key)
        finally:
            await conn.close()
        if checkpoint is None:
            return "the audit trail has no entry yet: nothing to sign"
        heads = ", ".join(f"{chain} {head.seq}" for chain, head in sorted(checkpoint.heads.items()))
        return f"checkpoint {checkpoint.checkpoint_id} signed at {checkpoint.signed_at} with key {key.key_id}: {heads}"

    print(run_database_step(run, dsn))
    return 0


def _key(args: argparse.Namespace) -> int:
    settings = from_environment()
    try:
        key = AuditSigningKey.load(settings.audit_keys_dir)
    except AuditKeyError as error:
        raise UserError(str(error)) from None
    pem = key.public_pem()
    if args.out:
        try:
            Path(args.out).write_bytes(pem)
        except OSError as error:  # was a traceback
            raise UserError(f"cannot write the public key to {args.out} ({error.strerror}): give a file in an "
                            "existing directory") from None
        print(f"audit key {key.key_id}: public key written to {args.out}")
    else:
        print(f"audit key {key.key_id} (publish this fingerprint; verifiers need only the public key below)")
        print(pem.decode(), end="")
    return 0


def _since(value: str) -> Any:
    from evidence.subject import SubjectError, parse_time

    try:
        return parse_time(value, "--since")
    except SubjectError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = subparsers.add_parser("audit", help="the tamper-evident audit trail: verify, checkpoint, key")
    commands = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = commands.add_parser("verify", help="recompute every chain and name the first broken link")
    verify.add_argument("--since", type=_since, help="check from the last checkpoint before this ISO-8601 time")
    verify.add_argument("--public-key", type=Path, action="append",
                        help="a trusted public key (PEM); default: the local signing key's")
    verify.add_argument("--dsn", help="PostgreSQL URL (default: DIALER_PG_DSN)")
    verify.set_defaults(handler=_verify)
    checkpoint = commands.add_parser("checkpoint", help="sign every chain's head now")
    checkpoint.add_argument("--dsn", help="PostgreSQL URL (default: DIALER_PG_DSN)")
    checkpoint.set_defaults(handler=_checkpoint)
    key = commands.add_parser("key", help="print the signing key's fingerprint and public key")
    key.add_argument("--out", help="write the public key (PEM) to this file")
    key.set_defaults(handler=_key)
