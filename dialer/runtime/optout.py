"""The one path every opt-out takes, whatever its source (the CRM's API, an agent's
disposition, the key press after the safe-harbor message, a texted STOP).

Order: the CRM's record first, made durable in the outbox (PostgreSQL is the record of every
opt-out: the proof in a TCPA claim, kept 5 years, 47 CFR 64.1200(d)(6)); then the number on
the Redis opt-out list every gate reads, effective for the very next decision on every
controller (47 CFR 64.1200(a)(10)-(12), (d)(3): honored at once). If Redis fails after the
record is durable, the opt-out is not lost: the list is rebuilt from the CRM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from compliance_rules.optout import OptOut, block, parse_opt_out
from compliance_rules.store import DncStore
from crm_bridge.kinds import RecordKind
from crm_bridge.outbox import RecordSink
from dialer.runtime.ids import Prefix, new_id


@dataclass(frozen=True)
class OptOuts:
    dnc: DncStore
    records: RecordSink

    async def record(
        self,
        phone: object,
        source: object,
        *,
        lead_id: str | None = None,
        call_id: str | None = None,
        opt_out_id: str | None = None,
        now: datetime | None = None,
    ) -> OptOut:
        """Opt `phone` out of every channel; raises `OptOutError` (naming the field) on bad input."""
        result = parse_opt_out(phone, source, lead_id=lead_id, now=now)
        await self.commit([(RecordKind.OPT_OUT, {
            "opt_out_id": opt_out_id or new_id(Prefix.OPT_OUT), "phone": result.phone, "source": result.source.value,
            "lead_id": lead_id, "call_id": call_id, "created_at": result.recorded_at,
        })], result.phone)
        return result

    async def commit(self, records: Sequence[tuple[str, Mapping[str, object]]], phone: str) -> None:
        """Write `records`, which hold an opt-out of `phone` (and what came with it, such as the
        disposition that asked for it), durably in one write; then block the number."""
        await self.records.put_many(records)
        await block(self.dnc, phone)
