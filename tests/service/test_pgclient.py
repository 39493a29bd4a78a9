"""The PostgreSQL client: a statement outside a transaction is one round trip."""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from tortoise.context import TortoiseContext

from wfa_keys.db import tortoise_config
from wfa_keys.models import Organization


async def test_a_connection_goes_back_to_the_pool_without_a_reset_query(
    db: TortoiseContext, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    del db
    if not database_url.startswith("postgres"):
        pytest.skip("asyncpg's pool is PostgreSQL's (CI's PostgreSQL pass runs this)")
    sent: list[str] = []
    execute = asyncpg.connection.Connection.execute

    async def recording(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(query)
        return await execute(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.connection.Connection, "execute", recording)
    # The server's client (with WFA_DATABASE_TIMEOUT: wfa_keys.pgclient), as it opens it.
    async with TortoiseContext() as server:
        await server.init(config=tortoise_config(database_url, timeout=3))
        await Organization.filter(name="nobody").update(name="still nobody")
        assert await Organization.filter(name="nobody").count() == 0
    # The update went through asyncpg's execute; asyncpg's reset query (one more round trip
    # after every statement) did not follow it or the count.
    assert any(query.startswith("UPDATE") for query in sent)
    assert not [query for query in sent if "RESET ALL" in query or "UNLISTEN" in query]
