"""`dialer user create|passwd|disable|list`: the people who sign in to the consoles.

Passwords are asked twice on a terminal, or read as one line from standard input with
`--password-stdin` (scripts); they never appear in the command line or the process list.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from crm_bridge.migrate import MigrationError, ensure_schema
from crm_bridge.pg import DatabaseUnavailable
from crm_bridge.store import CrmStore
from dialer.cli import UserError
from dialer.settings import Settings, from_environment
from dialer.web.users import UserError as AccountError
from dialer.web.users import UserRole, UserStore, check_password_rules


@asynccontextmanager
async def crm_store(settings: Settings) -> AsyncIterator[CrmStore]:
    try:
        await ensure_schema(settings.pg_dsn)
        store = await CrmStore.open(settings.pg_dsn)
    except (DatabaseUnavailable, MigrationError) as error:
        raise UserError(str(error), exit_code=3) from None  # 3: PostgreSQL, as every admin command says
    try:
        yield store
    finally:
        await store.close()


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise UserError("No terminal to ask the password on: use --password-stdin.")
        password = getpass.getpass("New password: ")
        if getpass.getpass("Again: ") != password:
            raise UserError("The two passwords differ.")
    try:
        check_password_rules(password)
    except AccountError as error:
        raise UserError(str(error)) from None
    return password


async def _user(args: argparse.Namespace) -> int:
    command = args.user_command
    password = _password(args) if command in ("create", "passwd") else ""
    async with crm_store(from_environment()) as store:
        users = UserStore(store)
        try:
            if command == "create":
                user = await users.create(args.username, UserRole(args.role), password, agent_id=args.agent_id)
                print(f"created {user.username} ({user.role.value}{', agent ' + user.agent_id if user.agent_id else ''})")
            elif command == "passwd":
                await users.set_password(args.username, password)
                print(f"new password for {args.username}; every session of theirs has ended")
            elif command == "disable":
                await users.disable(args.username)
                print(f"disabled {args.username}; every session of theirs has ended")
            else:
                for user in await users.list():
                    state = "disabled" if user.disabled_at else "active"
                    print(f"{user.username:<20} {user.role.value:<10} {user.agent_id or '-':<16} {state}")
        except AccountError as error:
            raise UserError(str(error), exit_code=1 if error.refused else 2) from None
        except DatabaseUnavailable as error:
            raise UserError(str(error), exit_code=3) from None
    return 0


def _user_command(args: argparse.Namespace) -> int:
    return asyncio.run(_user(args))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = subparsers.add_parser("user", help="people who sign in to the consoles (passwords hashed with argon2id)")
    commands = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    create = commands.add_parser("create", help="add a person (an agent's account names its agent)")
    create.add_argument("username")
    create.add_argument("--role", required=True, choices=[role.value for role in UserRole])
    create.add_argument("--agent-id", help="the agent an agent's account speaks for")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    create.set_defaults(handler=_user_command)
    passwd = commands.add_parser("passwd", help="set a new password (ends every session of the person)")
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    passwd.set_defaults(handler=_user_command)
    disable = commands.add_parser("disable", help="no more sign-ins; every session ends")
    disable.add_argument("username")
    disable.set_defaults(handler=_user_command, password_stdin=False)
    listing = commands.add_parser("list", help="every account (never a password)")
    listing.set_defaults(handler=_user_command, password_stdin=False)
