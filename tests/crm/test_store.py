"""The read/write repository over the CRM tables (data written through the outbox)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from crm_bridge.backoff import Backoff
from crm_bridge.dispositions import DispositionCode, PipelineStage
from crm_bridge.outbox import Outbox
from crm_bridge.pg import DatabaseUnavailable
from crm_bridge.records import AgentRole, CallOutcome, DialMode
from crm_bridge.store import CrmStore, TokenRole, hash_token
from tests.crm import factories

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
async def store(migrated_scratch_dsn: str) -> AsyncIterator[CrmStore]:
    crm = await CrmStore.open(migrated_scratch_dsn)
    try:
        yield crm
    finally:
        await crm.close()


async def _write(tmp_path: Path, dsn: str, *items: tuple[str, dict[str, object]]) -> None:
    async with Outbox(tmp_path, dsn, backoff=Backoff(initial=0.02, maximum=0.2)) as outbox:
        await outbox.put_many(list(items))
        assert await outbox.flush(10)


async def test_reads_return_typed_records(tmp_path: Path, migrated_scratch_dsn: str, store: CrmStore) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    await _write(
        tmp_path,
        migrated_scratch_dsn,
        ("agent_upsert", factories.agent(role="supervisor")),
        ("campaign_upsert", factories.campaign(amd_settings={"total_analysis_time": 5000})),
        ("lead_upsert", factories.lead()),
        ("call", factories.ended_call(first)),
        ("call", factories.call(second, requested_at=factories.T0 + timedelta(hours=1), agent_id="agent-2")),
        ("disposition", factories.disposition("callback", call_id=first,
                                              callback_at=factories.T0 + timedelta(days=1))),
    )
    call = await store.get_call(first)
    assert call is not None and call.outcome is CallOutcome.ANSWERED and call.talk_seconds == 188.0
    assert await store.get_call("nope") is None
    assert [c.call_id for c in await store.list_calls(lead_id="lead-1")] == [second, first]
    assert [c.call_id for c in await store.list_calls(agent_id="agent-1001")] == [first]
    assert [c.call_id for c in await store.list_calls(since=factories.T0 + timedelta(minutes=1))] == [second]

    lead = await store.get_lead("lead-1")
    assert lead is not None and lead.pipeline_stage is PipelineStage.CONTACTED
    assert lead.callback_at == factories.T0 + timedelta(days=1)
    assert lead.state == "GA" and lead.phones == ("+14045550123",)
    assert [c.kind for c in lead.consents] == ["pewc"]
    assert lead.consents[0].in_force_at(factories.T0)
    assert [found.lead_id for found in await store.find_leads_by_phone("+14045550123")] == ["lead-1"]

    agent = await store.get_agent("agent-1001")
    assert agent is not None and agent.role is AgentRole.SUPERVISOR
    campaign = await store.get_campaign("camp-1")
    assert campaign is not None and campaign.dial_mode is DialMode.PREDICTIVE
    assert campaign.window_start == time(9, 0) and campaign.amd_settings == {"total_analysis_time": 5000}
    assert campaign.max_abandon_rate == pytest.approx(0.03)

    (disposition,) = await store.list_dispositions(call_id=first)
    assert disposition.code is DispositionCode.CALLBACK
    assert (disposition.stage_before, disposition.stage_after) == (PipelineStage.NEW_LEAD, PipelineStage.CONTACTED)


async def test_abandon_tally(tmp_path: Path, migrated_scratch_dsn: str, store: CrmStore) -> None:
    answered_at = factories.T0 + timedelta(seconds=9)
    people = [
        factories.call(str(uuid.uuid4()), lead_answered_at=answered_at, amd_result=result, abandoned=i == 0)
        for i, result in enumerate(["HUMAN", "HUMAN", "NOTSURE", "HUMAN"])
    ]
    # Not live answers (compliance_rules.telemarketing): a machine, a hang-up during the greeting,
    # an answer AMD never judged, a received call, a call not yet answered.
    others = [
        factories.call(str(uuid.uuid4()), lead_answered_at=answered_at, amd_result="MACHINE"),
        factories.call(str(uuid.uuid4()), lead_answered_at=answered_at, amd_result="HANGUP"),
        factories.call(str(uuid.uuid4()), lead_answered_at=answered_at),
        factories.call(str(uuid.uuid4()), direction="inbound", lead_answered_at=answered_at, amd_result="HUMAN"),
        factories.call(),
    ]
    await _write(tmp_path, migrated_scratch_dsn, *[("call", c) for c in people + others])
    tally = await store.abandon_tally("camp-1", factories.T0 - timedelta(days=30))
    assert (tally.live_answers, tally.abandoned, tally.rate) == (4, 1, 0.25)


async def test_tokens_are_stored_hashed_and_can_be_revoked(store: CrmStore) -> None:
    issued = await store.issue_token(TokenRole.AGENT, agent_id="agent-1001", label="softphone")
    assert issued.secret not in repr(issued)
    authenticated = await store.authenticate(issued.secret)
    assert authenticated == issued.token and authenticated.role is TokenRole.AGENT
    assert await store.authenticate("dlr_wrong") is None
    (listed,) = await store.list_tokens()
    assert listed.token_id == issued.token.token_id
    assert hash_token(issued.secret) != issued.secret
    assert await store.revoke_token(issued.token.token_id)
    assert not await store.revoke_token(issued.token.token_id)
    assert await store.authenticate(issued.secret) is None
    with pytest.raises(ValueError, match="agent_id"):
        await store.issue_token(TokenRole.AGENT)


async def test_idempotency_key_binds_once(store: CrmStore) -> None:
    assert await store.claim_idempotency_key("req-1", "call-a") == "call-a"
    assert await store.claim_idempotency_key("req-1", "call-b") == "call-a"
    assert await store.get_idempotency_key("req-1") == "call-a"
    assert await store.get_idempotency_key("req-2") is None
    assert await store.forget_idempotency_keys(datetime.now(UTC) + timedelta(seconds=1)) == 1


async def test_open_on_unreachable_server_says_what_to_do() -> None:
    with pytest.raises(DatabaseUnavailable, match="does not answer: start it or set DIALER_PG_DSN"):
        await CrmStore.open("postgresql://postgres@127.0.0.1:1/x")
