"""Tortoise's asyncpg client with a deadline on every step: the engine of PostgreSQL URLs.

A database that stops answering without closing anything (a blackholed route, a half-open
link) makes asyncpg wait forever by default: connecting waits 60 s, a statement has no
timeout, and taking a connection from the pool, and the reset asyncpg runs when one is
handed back, wait as long as it takes. Tortoise passes connect and statement timeouts
through to asyncpg (``timeout``, ``command_timeout``), but takes pooled connections with
no timeout. :class:`DeadlinePool` gives ``acquire`` (and so the release's reset, which asyncpg
bounds by the acquire's timeout) a default one.

The pool's reset skips asyncpg's reset *query* (:func:`keep_session`): by default, each time
Tortoise hands a connection back, that is, after every statement outside a transaction,
asyncpg sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` and waits for
the answer, which doubled the round trips of a request (a signed-in admin's page: the
session's lookup and the page, each followed by a reset). The service's pooled connections
hold no session state for it to undo: its advisory locks are transaction-scoped
(``pg_advisory_xact_lock``), it LISTENs on a connection of its own
(:mod:`wfa_keys.changes`), never SETs a session setting and declares no cursor outside a
transaction. asyncpg still rolls back a transaction left open and drops the connection's
listeners on release (``Connection._reset``, which runs whatever the reset).

:func:`wfa_keys.db.tortoise_config` names this module as the engine of ``postgres://`` URLs.
"""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]
from tortoise.backends.asyncpg.client import AsyncpgDBClient

__all__ = ["DeadlineAsyncpgClient", "DeadlinePool", "client_class", "keep_session"]

#: asyncpg.create_pool's own defaults, for the arguments it fills in before building a Pool.
_POOL_DEFAULTS: dict[str, Any] = {
    "max_queries": 50000,
    "max_inactive_connection_lifetime": 300.0,
}


async def keep_session(connection: asyncpg.Connection) -> None:
    """The pool's reset of a connection handed back: nothing beyond what asyncpg always
    does (roll back an open transaction, drop listeners); no round trip (see above)."""
    del connection


class DeadlinePool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg is untyped
    """asyncpg's pool, whose ``acquire`` times out after ``acquire_timeout`` seconds unless
    told otherwise; asyncpg then bounds the reset of ``release`` by the same time."""

    __slots__ = ("_acquire_timeout",)

    def __init__(self, *args: Any, acquire_timeout: float, **kwargs: Any) -> None:
        self._acquire_timeout = acquire_timeout
        super().__init__(*args, **kwargs)

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self._acquire_timeout if timeout is None else timeout)


class DeadlineAsyncpgClient(AsyncpgDBClient):
    """Tortoise's asyncpg client over a :class:`DeadlinePool`."""

    def __init__(self, *args: Any, acquire_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout

    async def create_pool(self, **kwargs: Any) -> DeadlinePool:
        options = _POOL_DEFAULTS | {"record_class": asyncpg.Record, "reset": keep_session} | kwargs
        pool: DeadlinePool = await DeadlinePool(
            None, acquire_timeout=self.acquire_timeout, **options
        )
        return pool


#: The name Tortoise looks for in an engine module.
client_class = DeadlineAsyncpgClient
