"""The SQL statements a test's code sends, as the database client receives them."""

from __future__ import annotations

from typing import Any

import pytest
from tortoise.connection import get_connection


def sent_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A list each statement the default connection's client class sends from now on
    (``execute_query`` and ``execute_many``) is appended to, until ``monkeypatch`` is
    undone."""
    statements: list[str] = []
    client = type(get_connection("default"))
    execute, execute_many = client.execute_query, client.execute_many

    async def recorded(self: Any, sql: str, values: Any = None) -> Any:
        statements.append(sql)
        return await execute(self, sql, values)

    async def recorded_many(self: Any, sql: str, values: Any) -> Any:
        statements.append(sql)
        return await execute_many(self, sql, values)

    monkeypatch.setattr(client, "execute_query", recorded)
    monkeypatch.setattr(client, "execute_many", recorded_many)
    return statements
