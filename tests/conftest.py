"""Fixtures shared by the whole suite.

The suite runs on a SQLite file by default and on PostgreSQL when ``WFA_TEST_DATABASE_URL``
names one. Each backend runs in its own pytest process (Tortoise keeps one per process).
Every test gets the schema from the real migrations and starts from empty tables.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tortoise.context import TortoiseContext

from wfa_keys.db import database
from wfa_keys.models import (
    AccessToken,
    ApiKey,
    AuditEvent,
    KeyChange,
    Organization,
    Session,
    ThrottleSlot,
    User,
)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The database the suite runs against: ``WFA_TEST_DATABASE_URL`` or a fresh SQLite file."""
    url = os.environ.get("WFA_TEST_DATABASE_URL")
    if url:
        return url
    path: Path = tmp_path_factory.mktemp("db") / "wfa-keys-test.sqlite3"
    return f"sqlite://{path}"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[TortoiseContext]:
    """An open, migrated database with every table emptied."""
    async with database(database_url) as ctx:
        for model in (
            AuditEvent,
            AccessToken,
            Session,
            ApiKey,
            User,
            Organization,
            KeyChange,
            ThrottleSlot,
        ):
            await model.all().delete()
        yield ctx
