"""Database configuration, migrations and connection lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tortoise import Tortoise
from tortoise.connection import get_connection
from tortoise.context import TortoiseContext
from tortoise.migrations.executor import MigrationExecutor

APP_LABEL = "wfa_keys"


def tortoise_config(database_url: str) -> dict[str, Any]:
    """The Tortoise ORM configuration for ``database_url``."""
    return {
        "connections": {"default": database_url},
        "apps": {
            APP_LABEL: {
                "models": ["wfa_keys.models"],
                "migrations": "wfa_keys.migrations",
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def apply_migrations() -> None:
    """Apply every migration not yet applied, on the current context's connection."""
    config = tortoise_config("")  # only the app section is read
    executor = MigrationExecutor(get_connection("default"), config["apps"])
    await executor.migrate()


@asynccontextmanager
async def database(database_url: str, *, migrate: bool = True) -> AsyncIterator[TortoiseContext]:
    """Open the database in a context of its own for the duration of the block.

    With ``migrate`` the schema is brought up to date first. Used by the CLI and the tests;
    the server uses :func:`open_global` so that every request task sees the connection.
    """
    async with TortoiseContext() as ctx:
        await ctx.init(config=tortoise_config(database_url))
        if migrate:
            await apply_migrations()
        yield ctx


async def open_global(database_url: str, *, migrate: bool = True) -> None:
    """Open the database for the whole process (server lifespan)."""
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)
    if migrate:
        await apply_migrations()


async def close_global() -> None:
    """Close the process-wide connections opened by :func:`open_global`."""
    await Tortoise.close_connections()


async def ping() -> None:
    """Raise when the database does not answer a trivial query."""
    await get_connection("default").execute_query("SELECT 1")
