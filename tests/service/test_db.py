"""Opening the database: migrations, and failures that must not hang."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from wfa_keys.db import close_global, database, open_global, ping
from wfa_keys.models import AccessToken, ApiKey, AuditEvent, Organization, Session, User


async def test_migrations_create_every_table_and_can_run_again(database_url: str) -> None:
    async with database(database_url):
        await ping()
    async with database(database_url):  # already migrated: nothing to do, nothing fails
        for model in (Organization, User, ApiKey, AuditEvent, Session, AccessToken):
            assert await model.all().count() >= 0


async def _open_and_close(opener: str, url: str) -> None:
    async with asyncio.timeout(30):
        if opener == "database":
            async with database(url):
                pass
        else:
            try:
                await open_global(url)
            finally:
                await close_global()


@pytest.mark.parametrize("opener", ["database", "open_global"])
async def test_an_unopenable_sqlite_file_fails_at_once_instead_of_hanging(
    tmp_path: Path, opener: str
) -> None:
    # Fails before any SQL runs, so it is safe in the PostgreSQL run as well.
    url = f"sqlite://{tmp_path / 'missing-directory' / 'db.sqlite3'}"

    with pytest.raises(sqlite3.OperationalError):
        await _open_and_close(opener, url)
