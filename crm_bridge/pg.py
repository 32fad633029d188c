"""Connecting to the CRM's PostgreSQL, with failures turned into one actionable sentence."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg


class DatabaseUnavailable(Exception):
    """PostgreSQL could not be reached or refused us; the message says what to do."""


class DatabaseNotAnswering(DatabaseUnavailable):
    """The server does not answer at all (down, restarting, cut off): a passing state worth waiting
    out, unlike a refused login or a malformed URL, which only a person can fix."""


def describe_server(dsn: str) -> str:
    """`host:port` of a DSN, for messages (never the password)."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:
        return "the configured server"
    return f"{host}:{port}"


def database_name(dsn: str) -> str:
    path = urlsplit(dsn).path.lstrip("/")
    return path or (urlsplit(dsn).username or "postgres")


def _maintenance_dsn(dsn: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, parts.fragment))


async def connect(dsn: str, *, create_missing: bool = False, connect_timeout: float = 5.0) -> asyncpg.Connection:
    """Open a connection, or raise `DatabaseUnavailable` with a sentence naming the fix.

    With `create_missing`, a database that does not exist on a server that answers is created
    (through the server's `postgres` database) and then connected to.
    """
    server = describe_server(dsn)
    try:
        return await asyncpg.connect(dsn, timeout=connect_timeout)
    except asyncpg.InvalidCatalogNameError:
        if not create_missing:
            raise DatabaseUnavailable(
                f"database {database_name(dsn)!r} does not exist on {server}: run `dialer db migrate` to create it"
            ) from None
    except (TimeoutError, OSError):
        raise DatabaseNotAnswering(
            f"PostgreSQL at {server} does not answer: start it or set DIALER_PG_DSN"
        ) from None
    except asyncpg.InvalidAuthorizationSpecificationError as error:
        raise DatabaseUnavailable(
            f"PostgreSQL at {server} refused the login ({error}): fix the user or password in DIALER_PG_DSN"
        ) from None
    except (asyncpg.InterfaceError, ValueError) as error:
        raise DatabaseUnavailable(f"DIALER_PG_DSN is not a usable PostgreSQL URL ({error})") from None
    await _create_database(dsn, connect_timeout=connect_timeout)
    return await connect(dsn, create_missing=False, connect_timeout=connect_timeout)


async def _create_database(dsn: str, *, connect_timeout: float) -> None:
    name = database_name(dsn)
    admin = await connect(_maintenance_dsn(dsn), connect_timeout=connect_timeout)
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        await admin.execute(f"CREATE DATABASE {quoted}")
    except asyncpg.DuplicateDatabaseError:
        pass  # another process created it between our attempts: that is what we wanted
    except asyncpg.InsufficientPrivilegeError:
        raise DatabaseUnavailable(
            f"database {name!r} does not exist on {describe_server(dsn)} and this user may not create it: "
            "create it or set DIALER_PG_DSN"
        ) from None
    finally:
        await admin.close()
