"""The PostgreSQL databases the suite may create and drop, all named from one setting.

``WFA_TEST_DATABASE_URL`` names the suite's database (``postgres://.../wfa_test``); the tests
that need a database of their own (an empty one to migrate, one to cut away under a server)
create ``<name>_<purpose>`` beside it and drop it afterwards. On a SQLite run (the variable
unset) those few tests use the local PostgreSQL with the name ``wfa_test``. Two suites at
once on one server need two names: set the variable.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
import pytest

__all__ = [
    "DEFAULT_POSTGRES_URL",
    "SCRATCH_PURPOSES",
    "PostgresDatabase",
    "own_database",
    "postgres_url",
    "scratch_database",
]

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/wfa_test"
#: Every ``<name>_<purpose>`` a test creates; the end-of-session check looks for each.
SCRATCH_PURPOSES = ("outage", "upgrade", "faults")


def postgres_url() -> str:
    """``WFA_TEST_DATABASE_URL`` when it names PostgreSQL, else the local default."""
    url = os.environ.get("WFA_TEST_DATABASE_URL", "")
    return url if url.startswith("postgres") else DEFAULT_POSTGRES_URL


def scratch_database(purpose: str) -> tuple[str, str]:
    """(URL of the server's ``postgres`` database, name of the scratch database)."""
    assert purpose in SCRATCH_PURPOSES, purpose
    parts = urlsplit(postgres_url())
    name = f"{parts.path.lstrip('/') or 'wfa_test'}_{purpose}"
    return parts._replace(path="/postgres").geturl(), name


@dataclass(frozen=True)
class PostgresDatabase:
    """A scratch database: where it lives, for servers started against it."""

    host: str
    port: int
    user: str
    name: str

    def url(self, *, port: int | None = None) -> str:
        """Its URL, through ``port`` (a proxy's) when given."""
        return f"postgres://{self.user}@{self.host}:{port or self.port}/{self.name}"


@asynccontextmanager
async def own_database(purpose: str) -> AsyncIterator[PostgresDatabase]:
    """The scratch database of ``purpose``, new and empty for the block, dropped after it.

    PostgreSQL runs on every machine of the project: in CI (``CI`` set) or on a PostgreSQL
    run a missing server fails the test; elsewhere it skips, so that the README's test
    command passes on a machine without one.
    """
    admin_url, name = scratch_database(purpose)
    parts = urlsplit(admin_url)
    host, port, user = parts.hostname or "127.0.0.1", parts.port or 5432, parts.username
    try:
        admin = await asyncpg.connect(admin_url)
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI") or os.environ.get("WFA_TEST_DATABASE_URL"):
            pytest.fail(f"this test needs PostgreSQL at {host}:{port}: {type(exc).__name__}")
        pytest.skip(f"no PostgreSQL at {host}:{port} (CI fails here instead of skipping)")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield PostgresDatabase(host, port, user or "postgres", name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
