"""Administrative writes (agents, campaigns, lead lists and their campaigns, API tokens, webhook
subscriptions), each in one transaction with its audit record: who (a token or the command line's
user), when, the action, and the entity before and after, in `admin_changes` and chained in the
audit trail (`admin_change`). Values arrive validated (`dialer.admin.models`); this module only
writes them.

Admin writes go straight to PostgreSQL, not through the outbox: an administrator needs to know at
once whether a change took (a unique name taken, a campaign that does not exist), and nothing is
lost by refusing when PostgreSQL is down (the caller gets 503 and retries). Secrets (token hashes,
webhook secrets) are never put in the audit record.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg

from crm_bridge.audit_chain import ADMIN_CHANGE_CHAIN, json_value
from crm_bridge.audit_log import append_inserted, lock_chains
from crm_bridge.store import hash_token


class Entity(StrEnum):
    AGENT = "agent"
    CAMPAIGN = "campaign"
    LIST = "list"
    TOKEN = "token"
    WEBHOOK = "webhook"


@dataclass(frozen=True)
class _Table:
    name: str
    key: str
    json_columns: frozenset[str] = frozenset()
    secret_columns: frozenset[str] = frozenset()


TABLES: dict[Entity, _Table] = {
    Entity.AGENT: _Table("agents", "agent_id"),
    Entity.CAMPAIGN: _Table("campaigns", "campaign_id", frozenset({"amd_settings", "prompts"})),
    Entity.LIST: _Table("lead_lists", "list_id"),
    Entity.TOKEN: _Table("api_tokens", "token_id", secret_columns=frozenset({"token_hash"})),
    Entity.WEBHOOK: _Table("webhook_subscriptions", "subscription_id",
                           secret_columns=frozenset({"secret", "previous_secret"})),
}


@dataclass(frozen=True)
class Actor:
    """Who makes a change: an API token (`tok_...`) or the command line's user (`cli:NAME`)."""

    name: str
    role: str
    channel: str  # api | cli


class AdminError(Exception):
    """A change refused; `code` is the API's machine-readable code, `field` the field at fault."""

    status = 422

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class NotFound(AdminError):
    status = 404


class Conflict(AdminError):
    status = 409


def row_json(entity: Entity, row: Mapping[str, Any] | asyncpg.Record | None) -> dict[str, Any] | None:
    """A row as plain JSON values, secrets left out (what the audit record and the API show)."""
    if row is None:
        return None
    table = TABLES[entity]
    values: dict[str, Any] = {}
    for name, value in row.items():
        if name in table.secret_columns:
            continue
        if name in table.json_columns and isinstance(value, str):
            value = json.loads(value)
        values[name] = json_value(float(value) if name == "max_abandon_rate" and value is not None else value)
    return values


async def record_change(conn: asyncpg.Connection, actor: Actor, action: str, entity: Entity, entity_id: str,
                        before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> None:
    """The audit record of one change, inside the caller's transaction."""
    await lock_chains(conn)
    row = await conn.fetchrow(
        "INSERT INTO admin_changes (change_id, changed_at, actor, actor_role, channel, action, entity, entity_id, "
        "before, after) VALUES ($1, clock_timestamp(), $2, $3, $4, $5, $6, $7, $8, $9) "
        f"RETURNING {ADMIN_CHANGE_CHAIN.select_columns}",
        f"chg-{uuid.uuid4().hex}", actor.name, actor.role, actor.channel, action, entity.value, entity_id,
        None if before is None else json.dumps(before), None if after is None else json.dumps(after))
    assert row is not None
    await append_inserted(conn, ADMIN_CHANGE_CHAIN, dict(row), origin=None)


def _sql_value(table: _Table, name: str, value: Any) -> Any:
    return json.dumps(value) if name in table.json_columns and value is not None else value


class Admin:
    """Administrative reads and audited writes over one asyncpg pool (or anything with
    `acquire()` giving a connection, such as `CrmStore`)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    def connection(self) -> Any:
        """One connection (`async with admin.connection() as conn`) for reads this class does not make."""
        return self._pool.acquire()

    async def _fetch(self, conn: asyncpg.Connection, entity: Entity, key: str, *, lock: bool = False
                     ) -> asyncpg.Record | None:
        table = TABLES[entity]
        return await conn.fetchrow(
            f"SELECT * FROM {table.name} WHERE {table.key} = $1{' FOR UPDATE' if lock else ''}", key)

    async def get(self, entity: Entity, key: str) -> dict[str, Any]:
        async with self._pool.acquire() as conn:
            row = await self._fetch(conn, entity, key)
        if row is None:
            raise NotFound(f"{entity.value}_not_found", f"no {entity.value} {key!r}", f"{entity.value}_id")
        found = row_json(entity, row)
        assert found is not None
        return found

    async def list_all(self, entity: Entity, *, include_inactive: bool = True, after: str | None = None,
                   limit: int = 1000) -> list[dict[str, Any]]:
        table = TABLES[entity]
        where = [] if include_inactive or entity is Entity.TOKEN else ["active"]
        args: list[Any] = []
        if after is not None:
            args.append(after)
            where.append(f"{table.key} > ${len(args)}")
        args.append(limit)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(f"SELECT * FROM {table.name} {clause}ORDER BY {table.key} LIMIT ${len(args)}",
                                    *args)
        return [found for row in rows if (found := row_json(entity, row)) is not None]

    async def create(self, entity: Entity, values: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
        """Insert a new entity (`Conflict` when its id is taken) and audit it."""
        table = TABLES[entity]
        names = list(values)
        placeholders = ", ".join(f"${i}" for i in range(1, len(names) + 1))
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_chains(conn)  # before any row lock (crm_bridge.audit_log)
            row = await conn.fetchrow(
                f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({placeholders}) "
                f"ON CONFLICT ({table.key}) DO NOTHING RETURNING *",
                *[_sql_value(table, name, values[name]) for name in names])
            if row is None:
                raise Conflict(f"{entity.value}_exists", f"{entity.value} {values[table.key]!r} exists already",
                               field=table.key)
            after = row_json(entity, row)
            await record_change(conn, actor, "create", entity, str(values[table.key]), None, after)
        assert after is not None
        return after

    async def update(self, entity: Entity, key: str, values: Mapping[str, Any], actor: Actor, *,
                     action: str = "update") -> dict[str, Any]:
        """Change some columns of an entity and audit it (before and after). A change that
        changes nothing (disabling a disabled agent, a PATCH with the values it has) is
        idempotent: nothing is written, not even `updated_at`, nothing is audited, and the
        entity is returned as it is."""
        table = TABLES[entity]
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_chains(conn)
            current = await self._fetch(conn, entity, key, lock=True)
            if current is None:
                raise NotFound(f"{entity.value}_not_found", f"no {entity.value} {key!r}", f"{entity.value}_id")
            before = row_json(entity, current)
            assert before is not None
            if not values:
                return before
            names = list(values)
            sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
            stamp = ", updated_at = now()" if "updated_at" in current else ""
            try:
                # Compared as PostgreSQL stores the values (a time, a JSON column, a number as
                # its column's type), so the same value written another way is no change either.
                async with conn.transaction():
                    row = await conn.fetchrow(
                        f"UPDATE {table.name} SET {sets}{stamp} WHERE {table.key} = $1 RETURNING *",
                        key, *[_sql_value(table, name, values[name]) for name in names])
                    after = row_json(entity, row)
                    if not _changed(before, after):
                        raise _Unchanged
            except _Unchanged:
                return before
            await record_change(conn, actor, action, entity, key, before, after)
        assert after is not None
        return after

    async def delete(self, entity: Entity, key: str, actor: Actor) -> dict[str, Any]:
        """Remove an entity for good (webhook subscriptions); audited with what it was."""
        table = TABLES[entity]
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_chains(conn)
            row = await conn.fetchrow(f"DELETE FROM {table.name} WHERE {table.key} = $1 RETURNING *", key)
            if row is None:
                raise NotFound(f"{entity.value}_not_found", f"no {entity.value} {key!r}", f"{entity.value}_id")
            before = row_json(entity, row)
            await record_change(conn, actor, "delete", entity, key, before, None)
        assert before is not None
        return before

    # --- tokens -------------------------------------------------------------------------

    async def issue_token(self, role: str, actor: Actor, *, agent_id: str | None = None,
                          label: str | None = None) -> tuple[dict[str, Any], str]:
        """A new token and its secret (shown once; only its sha256 is stored)."""
        if role == "agent" and not agent_id:
            raise AdminError("invalid_field", "an agent token needs the agent_id it speaks for", field="agent_id")
        if role != "agent" and agent_id is not None:
            # A CRM, supervisor or admin token speaks for nobody: an agent_id on it would only mislead
            # whoever reads the token list.
            raise AdminError("invalid_field", f"a {role} token speaks for no agent: give agent_id only with role agent",
                             field="agent_id")
        if agent_id is not None:
            async with self._pool.acquire() as conn:
                if await conn.fetchval("SELECT NOT EXISTS (SELECT 1 FROM agents WHERE agent_id = $1)", agent_id):
                    raise AdminError("unknown_agent", f"no agent {agent_id!r}", field="agent_id")
        secret = f"dlr_{secrets.token_urlsafe(32)}"
        values = {"token_id": f"tok_{secrets.token_hex(8)}", "token_hash": hash_token(secret), "role": role,
                  "agent_id": agent_id, "label": label}
        return await self.create(Entity.TOKEN, values, actor), secret

    async def revoke_token(self, token_id: str, actor: Actor) -> dict[str, Any]:
        async with self._pool.acquire() as conn:
            row = await self._fetch(conn, Entity.TOKEN, token_id)
        if row is None or row["revoked_at"] is not None:
            raise NotFound("token_not_found", f"no live token {token_id!r}")
        return await self.update(Entity.TOKEN, token_id, {"revoked_at": await self._now()}, actor, action="revoke")

    async def _now(self) -> datetime:
        async with self._pool.acquire() as conn:
            now: datetime = await conn.fetchval("SELECT now()")
        return now

    # --- lists and campaigns ------------------------------------------------------------

    async def add_to_list(self, list_id: str, lead_ids: Sequence[str], actor: Actor) -> dict[str, Any]:
        """Put leads on a list (moving them off another); they join the campaigns the list is
        assigned to. Unknown lead ids are refused, naming the first."""
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_chains(conn)
            if await self._fetch(conn, Entity.LIST, list_id, lock=True) is None:
                raise NotFound("list_not_found", f"no list {list_id!r}", "list_id")
            known = {row["lead_id"] for row in await conn.fetch(
                "SELECT lead_id FROM leads WHERE lead_id = ANY($1::text[]) FOR UPDATE", list(lead_ids))}
            missing = [lead_id for lead_id in lead_ids if lead_id not in known]
            if missing:
                raise AdminError("unknown_lead", f"no lead {missing[0]!r}", field="lead_ids")
            moved = await conn.fetch(
                "SELECT lead_id, list_id FROM leads WHERE lead_id = ANY($1::text[]) AND list_id IS DISTINCT FROM $2",
                list(lead_ids), list_id)
            await conn.execute("UPDATE leads SET list_id = $1, updated_at = now() WHERE lead_id = ANY($2::text[])",
                               list_id, list(lead_ids))
            joined = await _join_campaigns(conn, list_id, list(lead_ids))
            after = {"lead_ids": sorted(known), "moved_from": {row["lead_id"]: row["list_id"] for row in moved
                                                                 if row["list_id"] is not None},
                     "campaign_memberships_added": joined}
            await record_change(conn, actor, "add_leads", Entity.LIST, list_id, None, after)
        return {"list_id": list_id, "leads": len(known), "campaign_memberships_added": joined}

    async def list_campaigns_of(self, list_id: str) -> list[str]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch("SELECT campaign_id FROM campaign_lists WHERE list_id = $1 ORDER BY campaign_id",
                                    list_id)
        return [row["campaign_id"] for row in rows]

    async def lists_of_campaign(self, campaign_id: str) -> list[dict[str, Any]]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT cl.list_id, cl.assigned_at, (SELECT count(*) FROM leads l WHERE l.list_id = cl.list_id) AS leads "
                "FROM campaign_lists cl WHERE cl.campaign_id = $1 ORDER BY cl.list_id", campaign_id)
        return [{"list_id": row["list_id"], "assigned_at": row["assigned_at"], "leads": int(row["leads"])}
                for row in rows]

    async def assign_list(self, campaign_id: str, list_id: str, actor: Actor) -> dict[str, Any]:
        """Assign a list to a campaign: each of its leads becomes a member of the campaign (a lead
        already a member keeps its dialing history)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_chains(conn)
            if await self._fetch(conn, Entity.CAMPAIGN, campaign_id) is None:
                raise NotFound("campaign_not_found", f"no campaign {campaign_id!r}", "campaign_id")
            if await self._fetch(conn, Entity.LIST, list_id) is None:
                raise AdminError("unknown_list", f"no list {list_id!r}", field="list_id")
            inserted = await conn.fetchval(
                "INSERT INTO campaign_lists (campaign_id, list_id) VALUES ($1, $2) ON CONFLICT DO NOTHING "
                "RETURNING true", campaign_id, list_id)
            if not inserted:
                raise Conflict("list_assigned", f"list {list_id!r} is assigned to {campaign_id!r} already",
                               field="list_id")
            lead_ids = [row["lead_id"] for row in await conn.fetch(
                "SELECT lead_id FROM leads WHERE list_id = $1", list_id)]
            joined = await _join_campaigns(conn, list_id, lead_ids, campaign_id=campaign_id)
            after = {"campaign_id": campaign_id, "list_id": list_id, "campaign_memberships_added": joined}
            await record_change(conn, actor, "assign_list", Entity.CAMPAIGN, campaign_id, None, after)
        return after

    async def unassign_list(self, campaign_id: str, list_id: str, actor: Actor) -> dict[str, Any]:
        """Take a list off a campaign: its members not yet done are retired (`list_removed`); their
        history stays."""
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_chains(conn)
            removed = await conn.fetchval(
                "DELETE FROM campaign_lists WHERE campaign_id = $1 AND list_id = $2 RETURNING true",
                campaign_id, list_id)
            if not removed:
                raise NotFound("list_not_assigned", f"list {list_id!r} is not assigned to {campaign_id!r}")
            status = await conn.execute(
                "UPDATE campaign_leads SET done = true, done_reason = 'list_removed', updated_at = now() "
                "WHERE campaign_id = $1 AND list_id = $2 AND NOT done", campaign_id, list_id)
            retired = int(status.split()[-1])
            before = {"campaign_id": campaign_id, "list_id": list_id}
            await record_change(conn, actor, "unassign_list", Entity.CAMPAIGN, campaign_id, before,
                                {"memberships_retired": retired})
        return {"campaign_id": campaign_id, "list_id": list_id, "memberships_retired": retired}

    async def changes(self, entity: Entity, entity_id: str) -> list[dict[str, Any]]:
        """An entity's audit records, oldest first."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT change_id, changed_at, actor, actor_role, channel, action, before, after FROM admin_changes "
                "WHERE entity = $1 AND entity_id = $2 ORDER BY changed_at, change_id", entity.value, entity_id)
        return [{**{name: json_value(row[name]) for name in ("change_id", "changed_at", "actor", "actor_role",
                                                            "channel", "action")},
                 "before": json.loads(row["before"]) if row["before"] else None,
                 "after": json.loads(row["after"]) if row["after"] else None} for row in rows]


class _Unchanged(Exception):
    """Rolls back an update that changed nothing (to its savepoint: the transaction goes on)."""


def _changed(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> bool:
    ignore = {"updated_at"}
    return {k: v for k, v in (before or {}).items() if k not in ignore} != \
        {k: v for k, v in (after or {}).items() if k not in ignore}


async def _join_campaigns(conn: asyncpg.Connection, list_id: str, lead_ids: list[str], *,
                          campaign_id: str | None = None) -> int:
    """Memberships for these leads in every campaign the list is assigned to (or in one)."""
    status = await conn.execute(
        "INSERT INTO campaign_leads (membership_id, campaign_id, lead_id, list_id) "
        "SELECT cl.campaign_id || ':' || l.lead_id, cl.campaign_id, l.lead_id, $1 "
        "FROM campaign_lists cl CROSS JOIN unnest($2::text[]) AS l(lead_id) "
        "WHERE cl.list_id = $1 AND ($3::text IS NULL OR cl.campaign_id = $3) "
        "ON CONFLICT (membership_id) DO UPDATE SET list_id = EXCLUDED.list_id "
        "WHERE campaign_leads.list_id IS DISTINCT FROM EXCLUDED.list_id AND NOT campaign_leads.done",
        list_id, lead_ids, campaign_id)
    return int(status.split()[-1])
