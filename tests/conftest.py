"""Fixtures shared by the whole suite.

The suite runs on a SQLite file by default and on PostgreSQL when ``WFA_TEST_DATABASE_URL``
names one. Each backend runs in its own pytest process (Tortoise keeps one per process).
Every test gets the schema from the real migrations and starts from empty tables.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import pytest
from tortoise.context import TortoiseContext

from support.postgres import SCRATCH_PURPOSES
from wfa_keys.db import database
from wfa_keys.models import (
    AccessToken,
    ApiKey,
    AuditEvent,
    KeyChange,
    KeyNetwork,
    KeyReminder,
    KeyUsage,
    KeyUsageDay,
    KeyUsageWeek,
    LimitCounter,
    Organization,
    OrganizationUsageHour,
    ServerSecret,
    Session,
    ThrottleSlot,
    User,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """In CI's PostgreSQL pass every test runs: a skip there is a failure.

    The PostgreSQL-only tests skip on SQLite (CI's first pass) and run in this one; the
    browser, Redis and outage tests fail in CI rather than skip. This makes sure no skip,
    today's or a future one, can hide a test in the pass that runs them all.
    """
    report = yield
    if report.skipped and _every_test_must_run():
        # A skip's longrepr is (path, line, "Skipped: reason").
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"{reason}: CI's PostgreSQL run skips nothing"
    return report


def pytest_sessionstart(session: pytest.Session) -> None:
    """Note what the checkout holds, so that the end of the session sees what tests left."""
    session.stash[_FILES_BEFORE] = _checkout_files(session)
    if os.environ.get("CI"):
        from support import redis_server

        session.stash[_REDIS_KEYS_BEFORE] = redis_server.all_keys()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The suite leaves nothing behind: no file in the checkout, no scratch PostgreSQL
    database, no key in the test Redis. Anything left fails the run."""
    if exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return  # interrupted or broken: what is left says nothing
    if session.config.option.collectonly:
        return
    left = _leftovers(session)
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("=", "the suite left these behind", red=True)
            for line in left:
                reporter.write_line(line)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_FILES_BEFORE = pytest.StashKey[set[str]]()
_REDIS_KEYS_BEFORE = pytest.StashKey[set[str]]()


def _checkout_files(session: pytest.Session) -> set[str]:
    root = session.config.rootpath
    # .cache and node_modules: the tools the tests install on purpose from the npm registry
    # (axe-core; tests/node's standardwebhooks, when .ci/run has not installed it first),
    # kept between runs, ignored by git.
    ignored = {
        ".git",
        ".venv",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".hypothesis",
        ".cache",
        "node_modules",
    }
    return {
        str(path.relative_to(root))
        for path in root.rglob("*")
        if not ignored.intersection(path.relative_to(root).parts)
        and "__pycache__" not in path.parts
    }


def _leftovers(session: pytest.Session) -> list[str]:
    from support import redis_server
    from support.postgres import scratch_database

    before: set[str] = session.stash.get(_FILES_BEFORE, set())
    left = [f"file {name}" for name in sorted(_checkout_files(session) - before)]
    if redis_server.used:
        left += [f"Redis key {key}" for key in redis_server.leftover_keys()]
    # CI's Redis is the suite's alone: there no key may appear that was not there
    # before the session, whoever's code wrote it.
    if _REDIS_KEYS_BEFORE in session.stash:
        before_keys = session.stash[_REDIS_KEYS_BEFORE]
        new_keys = sorted(redis_server.all_keys() - before_keys)
        left += [f"Redis key {key} (in {redis_server.REDIS_URL})" for key in new_keys]
    admin_url, _ = scratch_database("outage")
    names = [scratch_database(purpose)[1] for purpose in SCRATCH_PURPOSES]
    left += [f"PostgreSQL database {name}" for name in _existing_databases(admin_url, names)]
    return left


def _existing_databases(admin_url: str, names: list[str]) -> list[str]:
    """Which of ``names`` exist on the server (none when no PostgreSQL answers)."""
    import asyncio

    import asyncpg  # type: ignore[import-untyped]

    async def query() -> list[str]:
        try:
            connection = await asyncpg.connect(admin_url, timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return []
        try:
            rows = await connection.fetch(
                "SELECT datname FROM pg_database WHERE datname = ANY($1::text[])", names
            )
        finally:
            await connection.close()
        return sorted(row["datname"] for row in rows)

    return asyncio.run(query())


def _every_test_must_run() -> bool:
    url = os.environ.get("WFA_TEST_DATABASE_URL", "")
    return bool(os.environ.get("CI")) and url.startswith("postgres")


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
            # Webhooks (issue 23): deliveries and messages before their endpoints.
            WebhookDelivery,
            WebhookMessage,
            WebhookEndpoint,
            KeyReminder,
            KeyNetwork,
            AuditEvent,
            AccessToken,
            Session,
            ApiKey,
            User,
            Organization,
            KeyChange,
            ThrottleSlot,
            ServerSecret,
            KeyUsage,
            KeyUsageDay,
            KeyUsageWeek,
            OrganizationUsageHour,
            LimitCounter,
        ):
            await model.all().delete()
        yield ctx
