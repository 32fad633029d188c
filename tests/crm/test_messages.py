"""Texts in the CRM: message snapshots, delivery receipts in any order, first contact, opt-ins."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from crm_bridge.backoff import Backoff
from crm_bridge.dispositions import PipelineStage
from crm_bridge.outbox import Outbox
from crm_bridge.store import CrmStore
from tests.crm import factories

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
T0 = factories.T0


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


def message(message_id: str, version: int, status: str, **changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "message_id": message_id, "version": version, "direction": "outbound", "kind": "marketing",
        "lead_id": "lead-1", "agent_id": None, "campaign_id": None, "from_number": "+18885550100",
        "to_number": "+12125550142", "body": "Acme: hi. Reply STOP to opt out.", "encoding": "gsm7", "segments": 1,
        "template_id": None, "transport": "sip", "provider_message_id": None, "status": status,
        "status_detail": None, "compliance_decision_id": str(uuid.uuid4()), "requested_by": None,
        "created_at": T0, "sent_at": None,
    }
    record.update(changes)
    return record


def receipt(status: str, minutes: int, provider_id: str = "prov-1") -> dict[str, object]:
    return {"receipt_id": str(uuid.uuid4()), "message_id": None, "provider_message_id": provider_id,
            "status": status, "error": "30003" if status == "undelivered" else None,
            "received_at": T0 + timedelta(minutes=minutes)}


async def test_receipts_before_and_after_the_snapshot_keep_the_final_status(
    tmp_path: Path, migrated_scratch_dsn: str, store: CrmStore
) -> None:
    await _write(
        tmp_path, migrated_scratch_dsn,
        ("lead_upsert", factories.lead()),
        ("message", message("msg-1", 1, "queued")),
        ("message", message("msg-1", 2, "sending")),
        ("message_receipt", receipt("delivered", 2)),  # before the snapshot that names prov-1
        ("message", message("msg-1", 3, "sent", provider_message_id="prov-1", sent_at=T0)),
        ("message_receipt", receipt("sent", 1)),  # late, intermediate: ignored
        ("message", message("msg-1", 2, "sending")),  # an old snapshot replayed: ignored
    )
    found = await store.get_message("msg-1")
    assert found is not None
    assert (found.status, found.version, found.delivery_status) == ("sent", 3, "delivered")
    assert found.delivered_at == T0 + timedelta(minutes=2)


async def test_an_undelivered_receipt_is_kept_with_its_error(
    tmp_path: Path, migrated_scratch_dsn: str, store: CrmStore
) -> None:
    await _write(
        tmp_path, migrated_scratch_dsn,
        ("message", message("msg-2", 1, "sent", provider_message_id="prov-2")),
        ("message_receipt", receipt("undelivered", 1, "prov-2")),
    )
    found = await store.get_message("msg-2")
    assert found is not None and (found.delivery_status, found.delivery_error) == ("undelivered", "30003")
    assert found.delivered_at is None


async def test_an_inbound_text_moves_a_new_lead_to_contacted_and_shows_in_the_conversation(
    tmp_path: Path, migrated_scratch_dsn: str, store: CrmStore
) -> None:
    lead = factories.lead()
    inbound = message("msg-3", 1, "received", direction="inbound", kind="reply", from_number="+12125550142",
                      to_number="+18885550100", body="yes \N{THUMBS UP SIGN}", encoding="ucs2",
                      created_at=T0 + timedelta(minutes=5), compliance_decision_id=None, transport="sip")
    await _write(tmp_path, migrated_scratch_dsn, ("lead_upsert", lead), ("message", message("msg-1", 3, "sent")),
                 ("message", inbound))
    found = await store.get_lead(str(lead["lead_id"]))
    assert found is not None and found.pipeline_stage is PipelineStage.CONTACTED
    conversation = await store.list_messages(lead_id=str(lead["lead_id"]))
    assert [m.message_id for m in conversation] == ["msg-1", "msg-3"]
    latest = await store.latest_message(direction="inbound", lead_number="+12125550142")
    assert latest is not None and latest.body.startswith("yes")


async def test_an_opt_in_after_a_texted_opt_out_clears_the_standing(
    tmp_path: Path, migrated_scratch_dsn: str, store: CrmStore
) -> None:
    phone = "+12125550177"
    opt_out = {"opt_out_id": "opt_1", "phone": phone, "source": "sms_keyword", "lead_id": None, "call_id": None,
               "created_at": T0}
    await _write(tmp_path, migrated_scratch_dsn, ("opt_out", opt_out))
    standing = await store.opt_out_standing(phone)
    assert standing.opted_out and standing.by_text_only
    await _write(tmp_path, migrated_scratch_dsn, ("opt_in", {
        "opt_in_id": "opi_1", "phone": phone, "source": "sms_keyword", "lead_id": None, "message_id": "msg-9",
        "created_at": T0 + timedelta(minutes=1)}))
    assert not (await store.opt_out_standing(phone)).opted_out
    await _write(tmp_path, migrated_scratch_dsn, ("opt_out", {**opt_out, "opt_out_id": "opt_2", "source": "api",
                                                              "created_at": T0 + timedelta(minutes=2)}))
    standing = await store.opt_out_standing(phone)
    assert standing.opted_out and not standing.by_text_only
