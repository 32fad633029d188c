"""A separate process that writes through the outbox, for the SIGKILL tests.

    python outbox_child.py STATE_DIR DSN COUNT MODE

Puts COUNT opt-outs (ids `kill-0` ... ), then delivers them. MODE `hold` prints COMMITTED after
the first batch commits in PostgreSQL and then hangs before marking it delivered locally, so
the parent can kill it in exactly that window. MODE `run` delivers in small batches; the
parent kills it at some point in the middle.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from crm_bridge.backoff import Backoff
from crm_bridge.outbox import Outbox


async def main(state_dir: Path, dsn: str, count: int, mode: str) -> None:
    async def hold(ids: Sequence[int]) -> None:
        print(f"COMMITTED {len(ids)}", flush=True)
        await asyncio.Event().wait()  # until SIGKILL

    outbox = Outbox(
        state_dir,
        dsn,
        batch_size=10 if mode == "hold" else 3,
        backoff=Backoff(initial=0.02, maximum=0.2),
        prune_applied=False,
        after_apply_hook=hold if mode == "hold" else None,
    )
    await outbox.start()
    now = datetime.now(UTC)
    await outbox.put_many(
        [
            ("opt_out", {"opt_out_id": f"kill-{i}", "phone": f"+1404555{i:04d}", "source": "test", "created_at": now})
            for i in range(count)
        ]
    )
    print("PUT DONE", flush=True)
    await outbox.flush(60)
    print("FLUSHED", flush=True)
    await outbox.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]))
