"""Database configuration, migrations and connection lifetime."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.connection import get_connection
from tortoise.context import TortoiseContext
from tortoise.migrations.executor import MigrationExecutor

from wfa_keys.settings import DEFAULT_DATABASE_URL

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


def check_sqlite_file(database_url: str) -> None:
    """Raise ``sqlite3.Error`` when a SQLite database file cannot be opened.

    Tortoise 1.1's SQLite client keeps its connection lock when opening the file fails, and
    the next query then waits forever; opening the file first turns that into an error.
    Other databases are not touched.
    """
    if database_url.startswith("sqlite:"):
        path = expand_db_url(database_url)["credentials"]["file_path"]
        sqlite3.connect(path).close()


#: For Tortoise's own command line: ``tortoise -c wfa_keys.db.TORTOISE_ORM makemigrations``.
TORTOISE_ORM = tortoise_config(os.environ.get("WFA_DATABASE_URL", DEFAULT_DATABASE_URL))


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
    check_sqlite_file(database_url)
    async with TortoiseContext() as ctx:
        await ctx.init(config=tortoise_config(database_url))
        if migrate:
            await apply_migrations()
        yield ctx


async def open_global(database_url: str, *, migrate: bool = True) -> None:
    """Open the database for the whole process (server lifespan)."""
    check_sqlite_file(database_url)
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)
    if migrate:
        await apply_migrations()


async def close_global() -> None:
    """Close the process-wide connections opened by :func:`open_global`."""
    await Tortoise.close_connections()


async def ping() -> None:
    """Raise when the database does not answer a trivial query."""
    await get_connection("default").execute_query("SELECT 1")
