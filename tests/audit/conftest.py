"""Fixtures for the audit-trail tests: a private migrated database per test (tests here edit
and delete rows and entries on purpose, which must not touch the run's shared database), and a
signing key in a 0700 folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_bridge.audit_keys import AuditSigningKey
from tests.crm.conftest import migrated_scratch_dsn, scratch_db_name, scratch_dsn

__all__ = ["migrated_scratch_dsn", "scratch_db_name", "scratch_dsn"]


@pytest.fixture
def signing_key(tmp_path: Path) -> AuditSigningKey:
    return AuditSigningKey.load_or_create(tmp_path / "audit-keys", chain_signed=False)
