"""The whole dialer against the real Asterisk, PostgreSQL and Redis, as the campaign tests use it
(`tests.campaign.conftest`): the click-to-call runtime is part of it."""

from tests.campaign.conftest import floor

__all__ = ["floor"]
