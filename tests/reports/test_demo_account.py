"""The demo's supervisor account: created on the first run, a new password on each later one,
and the lines the demo prints say where the console is and how to serve the demo's database."""

from __future__ import annotations

import pytest

from crm_bridge.store import CrmStore
from dialer.demo import DEMO_SUPERVISOR, console_text, demo_supervisor_account
from dialer.settings import from_environment
from dialer.web.users import UserRole, UserStore

pytestmark = pytest.mark.timeout(60)


async def testdemo_supervisor_account_account(reports_dsn: str) -> None:
    store = await CrmStore.open(reports_dsn)
    try:
        users = UserStore(store)
        first = await demo_supervisor_account(users)
        second = await demo_supervisor_account(users)
        assert first != second
        user = await users.get(DEMO_SUPERVISOR)
        assert user is not None and user.role is UserRole.SUPERVISOR
        assert (await users.sign_in(DEMO_SUPERVISOR, first)).session is None
        assert (await users.sign_in(DEMO_SUPERVISOR, second)).session is not None
    finally:
        await store.close()
    text = console_text(from_environment({}), second)
    assert "http://127.0.0.1:8080/supervisor" in text and f"{DEMO_SUPERVISOR} / {second}" in text
    assert "dialer serve" in text and "DIALER_PG_DSN=" in text
