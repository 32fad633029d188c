"""Fixtures for the evidence-packet tests: a private migrated database (tests here tamper with
rows on purpose), the real campaign floor (tests/campaign/conftest.py), and the browser harness's
Chromium (tests/browser/conftest.py) to look at the report."""

from __future__ import annotations

from tests.browser.conftest import browser, browser_context, chromium, page
from tests.campaign.conftest import agent_phone, floor
from tests.crm.conftest import migrated_scratch_dsn, scratch_db_name, scratch_dsn

__all__ = ["agent_phone", "browser", "browser_context", "chromium", "floor", "migrated_scratch_dsn", "page",
           "scratch_db_name", "scratch_dsn"]
