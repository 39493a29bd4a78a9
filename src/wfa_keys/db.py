"""Database configuration, migrations and connection lifetime."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.connection import get_connection
from tortoise.context import TortoiseContext
from tortoise.exceptions import DBConnectionError
from tortoise.migrations.executor import MigrationExecutor

from wfa_keys.settings import DEFAULT_DATABASE_URL

APP_LABEL = "wfa_keys"


def parameterized_sql(query: Any) -> tuple[str, list[Any]]:
    """The SQL Tortoise would send for ``query`` (a queryset), with its parameters apart."""
    # Tortoise has no public way to a queryset's parameterised SQL with its parameters.
    query._choose_db_if_not_chosen()
    query._make_query()
    sql, parameters = query.query.get_parameterized_sql()
    return sql, list(parameters)


def is_postgres_url(database_url: str) -> bool:
    """True for the PostgreSQL URLs Tortoise accepts."""
    return database_url.startswith(("postgres://", "postgresql://", "asyncpg://", "psycopg://"))


def with_pool_size(database_url: str, pool_size: int | None) -> str:
    """``database_url`` with a PostgreSQL pool of at most ``pool_size`` connections.

    A ``maxsize`` already in the URL wins; SQLite URLs are returned as they are (one
    connection per process).
    """
    if pool_size is None or not is_postgres_url(database_url):
        return database_url
    parts = urlsplit(database_url)
    query = parse_qsl(parts.query)
    if any(name == "maxsize" for name, _ in query):
        return database_url
    query.append(("maxsize", str(pool_size)))
    if not any(name == "minsize" for name, _ in query):
        query.append(("minsize", str(min(1, pool_size))))
    return urlunsplit(parts._replace(query=urlencode(query)))


def listener_connect_args(database_url: str) -> dict[str, Any]:
    """``asyncpg.connect`` arguments for the PostgreSQL database of ``database_url``.

    Taken from Tortoise's own parsing of the URL, so that pool options in its query string
    (``maxsize``) are not sent to the server as settings.
    """
    credentials = expand_db_url(database_url)["credentials"]
    return {
        name: credentials[name]
        for name in ("host", "port", "user", "password", "database")
        if credentials.get(name) is not None
    }


def _connection(database_url: str, timeout: float | None) -> str | dict[str, Any]:
    """The ``connections`` entry for ``database_url``: Tortoise's parsing of it with the
    engine of our own for SQLite (transactions that take the write lock first,
    :mod:`wfa_keys.sqliteclient`) and, with ``timeout`` on asyncpg, for PostgreSQL (every
    step bounded, :mod:`wfa_keys.pgclient`); other URLs as they are."""
    if database_url.startswith("sqlite:"):
        parsed = expand_db_url(database_url)
        if parsed["engine"] == "tortoise.backends.sqlite":
            return {"engine": "wfa_keys.sqliteclient", "credentials": parsed["credentials"]}
        return database_url
    if timeout is None or not database_url.startswith(_ASYNCPG_SCHEMES):
        return database_url
    credentials = expand_db_url(database_url)["credentials"]
    return {
        "engine": "wfa_keys.pgclient",
        "credentials": credentials
        | {"timeout": timeout, "command_timeout": timeout, "acquire_timeout": timeout},
    }


_ASYNCPG_SCHEMES = ("postgres://", "postgresql://", "asyncpg://")


def tortoise_config(
    database_url: str, *, pool_size: int | None = None, timeout: float | None = None
) -> dict[str, Any]:
    """The Tortoise ORM configuration for ``database_url`` (``pool_size``: PostgreSQL's).

    With ``timeout`` (seconds), connecting, taking a pooled connection and each statement
    time out on PostgreSQL through asyncpg (``WFA_DATABASE_TIMEOUT``); SQLite has no network
    to wait for.
    """
    return {
        "connections": {"default": _connection(with_pool_size(database_url, pool_size), timeout)},
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


async def open_global(
    database_url: str,
    *,
    migrate: bool = True,
    pool_size: int | None = None,
    statement_timeout: float | None = None,
) -> None:
    """Open the database for the whole process (server lifespan).

    ``statement_timeout`` bounds every step of every statement on PostgreSQL (see
    :func:`tortoise_config`). Migrations run first, in a context of their own without it: a
    migration may take longer than any request should.
    """
    check_sqlite_file(database_url)
    if migrate and statement_timeout is not None:
        async with database(database_url):
            pass
        migrate = False
    await Tortoise.init(
        config=tortoise_config(database_url, pool_size=pool_size, timeout=statement_timeout),
        _enable_global_fallback=True,
    )
    if migrate:
        await apply_migrations()


async def close_global() -> None:
    """Close the process-wide connections opened by :func:`open_global`."""
    await Tortoise.close_connections()


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database could not be reached in time, rather than that a
    statement was wrong: the request is answered 503 (try again), not 500.

    A dead PostgreSQL surfaces as a bare ``OSError``, a silent one as ``TimeoutError``
    (``WFA_DATABASE_TIMEOUT``), a lost connection as asyncpg's ``InterfaceError`` or
    ``PostgresConnectionError``, an unreachable pool as Tortoise's ``DBConnectionError``.
    """
    if isinstance(exc, OSError | TimeoutError | DBConnectionError):
        return True
    try:
        import asyncpg  # type: ignore[import-untyped]  # optional, PostgreSQL only
    except ImportError:  # pragma: no cover - installed with the service
        return False
    return isinstance(
        exc,
        asyncpg.InterfaceError | asyncpg.PostgresConnectionError | asyncpg.QueryCanceledError,
    )


async def ping() -> None:
    """Raise when the database does not answer a trivial query."""
    await get_connection("default").execute_query("SELECT 1")
