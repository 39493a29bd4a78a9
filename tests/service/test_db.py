"""Opening the database: migrations, and failures that must not hang."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from tortoise.connection import get_connection
from tortoise.context import TortoiseContext
from tortoise.migrations.autodetector import MigrationAutodetector
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget
from tortoise.transactions import in_transaction

from support.postgres import scratch_database
from wfa_keys.db import (
    check_sqlite_file,
    close_global,
    database,
    open_global,
    ping,
    tortoise_config,
)
from wfa_keys.models import (
    AccessToken,
    ApiKey,
    AuditEvent,
    KeyUsage,
    KeyUsageDay,
    KeyUsageWeek,
    Organization,
    OrganizationUsageHour,
    Session,
    User,
)


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


# The rows of a database made by the first release, before migration 0003.
_OLD_ROWS = (
    "INSERT INTO organization (id, name, has_workflow_automation, created_at) VALUES "
    "('11111111-1111-1111-1111-111111111111', 'Old', true, '2024-01-01T00:00:00+00:00')",
    'INSERT INTO "user" (id, email, password_hash, role, organization_id, is_active, created_at) '
    "VALUES ('21111111-1111-1111-1111-111111111111', 'old@old.test', 'x', 'admin', "
    "'11111111-1111-1111-1111-111111111111', true, '2024-01-01T00:00:00+00:00')",
    "INSERT INTO api_key (key_id, name, secret_hash, enabled, created_at, owner_id, "
    "organization_id) VALUES ('wfak_old', 'old', 'h', true, '2024-01-01T00:00:00+00:00', "
    "'21111111-1111-1111-1111-111111111111', '11111111-1111-1111-1111-111111111111')",
)


@pytest.fixture
async def empty_database_url(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database of the suite's kind with no table at all, dropped afterwards."""
    if database_url.startswith("sqlite"):
        yield f"sqlite://{tmp_path / 'empty.sqlite3'}"
        return
    import asyncpg  # type: ignore[import-untyped]

    admin_url, name = scratch_database("upgrade")
    parts = urlsplit(database_url)
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield parts._replace(path=f"/{name}").geturl()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_keys_made_before_scopes_existed_keep_every_scope_after_migrating(
    empty_database_url: str,
) -> None:
    url = empty_database_url
    check_sqlite_file(url)
    async with TortoiseContext() as ctx:
        await ctx.init(config=tortoise_config(url))
        connection = get_connection("default")
        executor = MigrationExecutor(connection, tortoise_config("")["apps"])
        await executor.migrate(targets=[MigrationTarget("wfa_keys", "0002_shared_state")])
        for row in _OLD_ROWS:
            await connection.execute_query(row)

        await executor.migrate()

        key = await ApiKey.get(key_id="wfak_old")
        assert (key.scopes, key.allowed_cidrs) == (["workflows:read", "workflows:write"], [])


async def test_migrating_fills_the_usage_rollups_from_the_hours_already_recorded(
    empty_database_url: str,
) -> None:
    url = empty_database_url
    check_sqlite_file(url)
    acme, globex = uuid.UUID(int=1), uuid.UUID(int=2)
    sunday = datetime(2026, 3, 8, tzinfo=UTC)  # the hours cross a day and a week (Monday)
    hours = [("wfak_a", acme, sunday + timedelta(hours=h), h + 1) for h in (0, 5, 23, 24, 30, 200)]
    hours += [("wfak_b", acme, sunday + timedelta(hours=5), 7)]
    hours += [("wfak_c", globex, sunday + timedelta(hours=24), 11)]
    async with TortoiseContext() as ctx:
        await ctx.init(config=tortoise_config(url))
        connection = get_connection("default")
        executor = MigrationExecutor(connection, tortoise_config("")["apps"])
        await executor.migrate(targets=[MigrationTarget("wfa_keys", "0010_scale_indexes")])
        for key_id, organization_id, hour, calls in hours:
            await KeyUsage.create(
                key_id=key_id,
                organization_id=organization_id,
                hour=hour,
                success=calls,
                invalid_secret=1,
            )

        await executor.migrate()

        def expected(start_of: Any, by_key: bool) -> dict[tuple[Any, datetime], list[int]]:
            sums: dict[tuple[Any, datetime], list[int]] = {}
            for key_id, organization_id, hour, calls in hours:
                at = (key_id if by_key else organization_id, start_of(hour))
                total = sums.setdefault(at, [0, 0])
                total[0] += calls
                total[1] += 1
            return sums

        async def rows(model: Any, by: str, at: str) -> dict[tuple[Any, datetime], list[int]]:
            found = await model.all().values(by, at, "success", "invalid_secret")
            return {
                (row[by], row[at].astimezone(UTC)): [row["success"], row["invalid_secret"]]
                for row in found
            }

        def day(hour: datetime) -> datetime:
            return hour.replace(hour=0)

        def week(hour: datetime) -> datetime:
            return day(hour) - timedelta(days=hour.weekday())

        assert await rows(OrganizationUsageHour, "organization_id", "hour") == expected(
            lambda hour: hour, by_key=False
        )
        assert await rows(KeyUsageDay, "key_id", "day") == expected(day, by_key=True)
        assert await rows(KeyUsageWeek, "key_id", "week") == expected(week, by_key=True)
        assert len(expected(week, by_key=True)) == 5  # wfak_a's hours are in three weeks


async def test_a_sqlite_transaction_that_reads_first_is_not_refused_for_another_process_write(
    tmp_path: Path,
) -> None:
    # Tortoise's plain BEGIN read on a snapshot and SQLite refused the first write at once
    # ("database is locked") when another process had written since: a second worker, the
    # command line. Begun with BEGIN IMMEDIATE, the transaction holds the write lock from its
    # start and the other writer waits for it instead.
    path = tmp_path / "two-writers.sqlite3"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE probe (n INTEGER)")
    setup.close()

    def write_elsewhere() -> None:  # another process's connection, as sqlite3 opens it
        other = sqlite3.connect(path, timeout=10)
        try:
            with other:
                other.execute("INSERT INTO probe (n) VALUES (2)")
        finally:
            other.close()

    async with database(f"sqlite://{path}", migrate=False), in_transaction() as transaction:
        await transaction.execute_query("SELECT count(*) FROM probe")
        elsewhere = asyncio.ensure_future(asyncio.to_thread(write_elsewhere))
        # Long enough for the other write to commit if nothing holds it back.
        await asyncio.wait([elsewhere], timeout=1)
        await transaction.execute_query("INSERT INTO probe (n) VALUES (1)")
    await elsewhere

    with sqlite3.connect(path) as check:
        assert sorted(n for (n,) in check.execute("SELECT n FROM probe")) == [1, 2]
    check.close()


async def test_the_migrations_describe_the_models_as_they_are(tmp_path: Path) -> None:
    # What `tortoise makemigrations` would write: nothing, or a model changed without one.
    async with database(f"sqlite://{tmp_path / 'drift.sqlite3'}", migrate=False) as ctx:
        assert ctx.apps is not None
        writers = await MigrationAutodetector(ctx.apps, tortoise_config("")["apps"]).changes()

    assert [operation for writer in writers for operation in writer.operations] == []
