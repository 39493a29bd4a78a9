"""A PostgreSQL database of a test's own, on the server the suite runs against.

Tests that put a fault proxy between a server and PostgreSQL need a database that no other
test empties meanwhile. Its name is the suite's database (``WFA_TEST_DATABASE_URL``, else
``postgres``) with a suffix of the test's own and this process's ID. PostgreSQL runs on every
machine of the project: in CI (``CI`` set) or on a PostgreSQL run, a missing server fails the
test; elsewhere it skips, so that the README's test command passes on a machine without one.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
import pytest

__all__ = ["PostgresDatabase", "scratch_database"]


@dataclass(frozen=True)
class PostgresDatabase:
    """Where a scratch database lives."""

    host: str
    port: int
    user: str
    name: str

    def url(self, *, port: int | None = None) -> str:
        """Its URL, through ``port`` (a proxy's) when given."""
        return f"postgres://{self.user}@{self.host}:{port or self.port}/{self.name}"


def _server() -> tuple[str, int, str, str]:
    url = os.environ.get("WFA_TEST_DATABASE_URL", "")
    parts = urlsplit(url if url.startswith("postgres") else "postgres://postgres@127.0.0.1:5432/")
    base = parts.path.lstrip("/") or "postgres"
    return parts.hostname or "127.0.0.1", parts.port or 5432, parts.username or "postgres", base


@asynccontextmanager
async def scratch_database(suffix: str) -> AsyncIterator[PostgresDatabase]:
    """A new, empty database for the block; dropped afterwards."""
    host, port, user, base = _server()
    name = f"{base}_{suffix}_{os.getpid()}"
    try:
        admin = await asyncpg.connect(host=host, port=port, user=user, database="postgres")
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI") or os.environ.get("WFA_TEST_DATABASE_URL"):
            pytest.fail(f"this test needs PostgreSQL at {host}:{port}: {type(exc).__name__}")
        pytest.skip(f"no PostgreSQL at {host}:{port} (CI fails here instead of skipping)")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield PostgresDatabase(host, port, user, name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
