"""People who sign in to the consoles: accounts, passwords, sessions and login throttling.

Bearer tokens (`api_tokens`) are for machines; people have a user name and a password and get a
session cookie. The tables are migration 0015 (`users`, `user_sessions`, `login_failures`).

- Passwords are hashed with **argon2id** (argon2-cffi's `PasswordHasher`, RFC 9106's parameters:
  memory-hard, so a stolen table is slow to attack on GPUs); a hash made with older parameters is
  replaced at the next sign-in. Hashing runs in a worker thread (it takes tens of milliseconds).
- A session is a random secret in an HttpOnly cookie; only its sha256 is stored, with the
  session's CSRF token. Sessions end after `SESSION_HOURS` (a shift), at sign-out, and all at
  once when the user signs out everywhere, changes password or is disabled. `dialer serve`
  deletes ended sessions a week after they end, and wrong passwords once out of the window
  (`UserStore.purge_periodically`, hourly).
- **Throttling**: `MAX_FAILURES` (10) wrong passwords for one user name within
  `FAILURE_WINDOW` (15 min) refuse every sign-in as that name, right password or not, until
  the oldest of them is older than the window. An unknown name counts the same, so the answer
  does not tell which names exist (and a dummy hash is checked, so neither does the time).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import asyncpg
import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from crm_bridge.pg import DatabaseUnavailable
from crm_bridge.store import ApiToken, CrmStore, TokenRole

SESSION_HOURS = 12
# An ended session's row is kept this long (who was signed in, from where), then deleted.
ENDED_SESSIONS_KEPT = timedelta(days=7)
PURGE_EVERY_SECONDS = 3600.0
MAX_FAILURES = 10
FAILURE_WINDOW = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 10
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

log = structlog.get_logger(__name__)
_HASHER = PasswordHasher()  # argon2id, RFC 9106 low-memory profile: t=3, m=64 MiB, p=4
# Checked against when the user name is unknown, so that a wrong name costs the same time.


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so that an unknown name costs the
    same time as a wrong password (no user enumeration by timing). Made on first use: hashing
    takes a fifth of a second, which every `dialer` command would otherwise pay at import."""
    return _HASHER.hash(secrets.token_urlsafe(16))


class UserRole(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class UserError(Exception):
    """A request about accounts that cannot be done; the message is one sentence for the person.
    `refused`: it names a user or agent that exists already or does not exist (exit status 1 on the
    command line, as the other admin commands), rather than an invalid value (2)."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class User:
    user_id: str
    username: str
    role: UserRole
    agent_id: str | None
    disabled_at: datetime | None
    created_at: datetime

    @property
    def token_role(self) -> TokenRole:
        return TokenRole(self.role.value)


@dataclass(frozen=True)
class Session:
    """A signed-in browser: who, its CSRF token, and until when."""

    session_id: str
    user: User
    csrf_token: str
    expires_at: datetime

    def as_token(self) -> ApiToken:
        """The session as the API's routes see a caller: the user's role, agent and a stable id
        (`usr_...`: idempotency keys and audit rows name the person, whichever browser)."""
        return ApiToken(token_id=self.user.user_id, role=self.user.token_role, agent_id=self.user.agent_id,
                        label=f"session of {self.user.username}", created_at=self.user.created_at,
                        revoked_at=None)


@dataclass(frozen=True)
class SignIn:
    """The result of a sign-in: a session and its cookie secret, or why not."""

    session: Session | None = None
    secret: str | None = None
    throttled_for: float | None = None  # seconds until a sign-in is accepted again


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"A password needs at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > 1024:
        raise UserError("A password may have at most 1024 characters.")


async def hash_password(password: str) -> str:
    check_password_rules(password)
    return await asyncio.to_thread(_HASHER.hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


_USER_COLUMNS = "user_id, username, role, agent_id, disabled_at, created_at"


def _user(row: Any) -> User:
    return User(row["user_id"], row["username"], UserRole(row["role"]), row["agent_id"], row["disabled_at"],
                row["created_at"])


class UserStore:
    """Accounts and sessions in the CRM's PostgreSQL (through `CrmStore`'s guarded pool, so an
    outage is `DatabaseUnavailable`, a 503, like every other read)."""

    def __init__(self, store: CrmStore) -> None:
        self._store = store

    # ---- accounts ----------------------------------------------------------------------------
    async def create(self, username: str, role: UserRole, password: str, *, agent_id: str | None = None) -> User:
        if not USERNAME.match(username):
            raise UserError("A user name is 1-64 lower-case letters, digits, '.', '_' or '-', starting with a "
                            "letter or digit.")
        if (role is UserRole.AGENT) != (agent_id is not None):
            raise UserError("An agent's account needs --agent-id; a supervisor's or admin's takes none.")
        password_hash = await hash_password(password)
        async with self._store.acquire() as conn:
            if agent_id is not None:
                if await conn.fetchval("SELECT 1 FROM agents WHERE agent_id = $1", agent_id) is None:
                    raise UserError(f"No agent {agent_id!r} in the CRM: add the agent first.", refused=True)
                if await conn.fetchval("SELECT 1 FROM users WHERE agent_id = $1", agent_id):
                    raise UserError(f"Agent {agent_id!r} already has an account.", refused=True)
            if await conn.fetchval("SELECT 1 FROM users WHERE username = $1", username):
                raise UserError(f"User {username!r} exists already.", refused=True)
            row = await conn.fetchrow(
                f"INSERT INTO users (user_id, username, role, agent_id, password_hash) VALUES ($1, $2, $3, $4, $5) "
                f"RETURNING {_USER_COLUMNS}",
                f"usr_{secrets.token_hex(8)}", username, role.value, agent_id, password_hash)
        return _user(row)

    async def get(self, username: str) -> User | None:
        async with self._store.acquire() as conn:
            row = await conn.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE username = $1", username)
        return None if row is None else _user(row)

    async def list(self) -> list[User]:
        async with self._store.acquire() as conn:
            rows = await conn.fetch(f"SELECT {_USER_COLUMNS} FROM users ORDER BY username")
        return [_user(row) for row in rows]

    async def set_password(self, username: str, password: str) -> None:
        """A new password; every session of the user ends (a leaked session goes with the old password)."""
        password_hash = await hash_password(password)
        async with self._store.acquire() as conn, conn.transaction():
            user_id = await conn.fetchval(
                "UPDATE users SET password_hash = $2, updated_at = now() WHERE username = $1 RETURNING user_id",
                username, password_hash)
            if user_id is None:
                raise UserError(f"No user {username!r}.", refused=True)
            await conn.execute("DELETE FROM login_failures WHERE username = $1", username)
            await conn.execute("UPDATE user_sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
                               user_id)

    async def disable(self, username: str) -> None:
        """The user can no longer sign in; every session ends at once."""
        async with self._store.acquire() as conn, conn.transaction():
            user_id = await conn.fetchval(
                "UPDATE users SET disabled_at = coalesce(disabled_at, now()), updated_at = now() "
                "WHERE username = $1 RETURNING user_id", username)
            if user_id is None:
                raise UserError(f"No user {username!r}.", refused=True)
            await conn.execute("UPDATE user_sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
                               user_id)

    # ---- signing in ----------------------------------------------------------------------------
    async def sign_in(self, username: str, password: str, *, remote: str | None = None) -> SignIn:
        """A new session when the password is right and the name is not throttled; otherwise
        `SignIn()` (wrong name, wrong password or disabled: one answer) or `throttled_for`."""
        async with self._store.acquire() as conn:
            failures = await conn.fetch(
                "SELECT failed_at, now() AS now FROM login_failures WHERE username = $1 "
                "AND failed_at > now() - $2::interval ORDER BY failed_at DESC LIMIT $3",
                username, FAILURE_WINDOW, MAX_FAILURES)
            if len(failures) >= MAX_FAILURES:
                oldest, now = failures[-1]["failed_at"], failures[-1]["now"]
                return SignIn(throttled_for=max(1.0, (oldest + FAILURE_WINDOW - now).total_seconds()))
            row = await conn.fetchrow(
                f"SELECT {_USER_COLUMNS}, password_hash FROM users WHERE username = $1", username)
        password_hash = row["password_hash"] if row is not None else _dummy_hash()
        right = await asyncio.to_thread(_verify, password_hash, password)
        if row is None or not right or row["disabled_at"] is not None:
            async with self._store.acquire() as conn, conn.transaction():
                # Failures older than the window no longer count: the table keeps only what does.
                await conn.execute("DELETE FROM login_failures WHERE username = $1 AND failed_at < now() - $2::interval",
                                   username[:64], FAILURE_WINDOW)
                await conn.execute("INSERT INTO login_failures (username, remote) VALUES ($1, $2)",
                                   username[:64], remote)
            return SignIn()
        user = _user(row)
        if _HASHER.check_needs_rehash(password_hash):
            new_hash = await asyncio.to_thread(_HASHER.hash, password)
            async with self._store.acquire() as conn:
                await conn.execute("UPDATE users SET password_hash = $2 WHERE user_id = $1", user.user_id, new_hash)
        secret = secrets.token_urlsafe(32)
        session_id, csrf = f"ses_{secrets.token_hex(8)}", secrets.token_urlsafe(24)
        async with self._store.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM login_failures WHERE username = $1", username)
            expires_at = await conn.fetchval(
                "INSERT INTO user_sessions (session_id, secret_hash, user_id, csrf_token, expires_at, remote) "
                "VALUES ($1, $2, $3, $4, now() + $5::interval, $6) RETURNING expires_at",
                session_id, hash_secret(secret), user.user_id, csrf, timedelta(hours=SESSION_HOURS), remote)
        return SignIn(Session(session_id, user, csrf, expires_at), secret)

    async def session(self, secret: str) -> Session | None:
        """The live session whose cookie secret this is (not expired, not revoked, user enabled)."""
        async with self._store.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT s.session_id, s.csrf_token, s.expires_at, "
                f"{', '.join('u.' + name for name in _USER_COLUMNS.split(', '))} "
                "FROM user_sessions s JOIN users u USING (user_id) WHERE s.secret_hash = $1 "
                "AND s.revoked_at IS NULL AND s.expires_at > now() AND u.disabled_at IS NULL",
                hash_secret(secret))
        if row is None:
            return None
        return Session(row["session_id"], _user(row), row["csrf_token"], row["expires_at"])

    async def live_sessions(self, session_ids: Sequence[str]) -> set[str]:
        """Which of these sessions still live (not expired, not revoked, user enabled), in one
        query: the event streams' `SessionWatch` asks for every open console at once."""
        async with self._store.acquire() as conn:
            rows = await conn.fetch(
                "SELECT s.session_id FROM user_sessions s JOIN users u USING (user_id) "
                "WHERE s.session_id = ANY($1::text[]) AND s.revoked_at IS NULL AND s.expires_at > now() "
                "AND u.disabled_at IS NULL", list(session_ids))
        return {row["session_id"] for row in rows}

    async def purge(self, keep_ended: timedelta = ENDED_SESSIONS_KEPT) -> tuple[int, int]:
        """Delete sessions ended (expired or signed out) more than `keep_ended` ago, and wrong
        passwords older than the throttling window (no longer counted). (sessions, failures)."""
        async with self._store.acquire() as conn:
            sessions = await conn.execute(
                "DELETE FROM user_sessions WHERE LEAST(expires_at, COALESCE(revoked_at, expires_at)) "
                "< now() - $1::interval", keep_ended)
            failures = await conn.execute("DELETE FROM login_failures WHERE failed_at < now() - $1::interval",
                                          FAILURE_WINDOW)
        return int(sessions.split()[-1]), int(failures.split()[-1])

    async def purge_periodically(self, every: float = PURGE_EVERY_SECONDS) -> None:
        """`purge` now and every `every` seconds until cancelled (`dialer serve` runs it); a
        PostgreSQL outage skips a round."""
        while True:
            try:
                sessions, failures = await self.purge()
                if sessions or failures:
                    log.info("sessions_purged", sessions=sessions, login_failures=failures)
            except (DatabaseUnavailable, OSError, TimeoutError, asyncpg.PostgresError,
                    asyncpg.InterfaceError) as error:
                log.warning("sessions_purge_failed", error=str(error))
            await asyncio.sleep(every)

    async def sign_out(self, session_id: str) -> None:
        async with self._store.acquire() as conn:
            await conn.execute("UPDATE user_sessions SET revoked_at = now() WHERE session_id = $1 "
                               "AND revoked_at IS NULL", session_id)

    async def sign_out_everywhere(self, user_id: str) -> int:
        """End every session of the user (every browser, this one too); how many ended."""
        async with self._store.acquire() as conn:
            status = await conn.execute("UPDATE user_sessions SET revoked_at = now() WHERE user_id = $1 "
                                        "AND revoked_at IS NULL", user_id)
        return int(status.split()[-1])
