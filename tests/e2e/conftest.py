"""Fixtures of the end-to-end tests: where the servers keep their data, and their cleanup.

SQLite runs use a new file per test; PostgreSQL runs (``WFA_TEST_DATABASE_URL``) use the
test database, emptied first by the ``db`` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.serving import Server


@pytest.fixture
def e2e_database_url(database_url: str, tmp_path: Path) -> str:
    """A new SQLite file, or the PostgreSQL test database."""
    if database_url.startswith("sqlite"):
        return f"sqlite://{tmp_path / 'e2e.sqlite3'}"
    return database_url


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    """Servers started by the test; each one is stopped at the end, whatever happened."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()
