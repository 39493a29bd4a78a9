"""Tortoise's SQLite client whose transactions take the write lock when they begin.

Tortoise opens a transaction with a plain ``BEGIN`` (SQLite's deferred transaction): it reads
on a snapshot of the file and asks for the write lock at its first write. When another
process (a second ``serve`` worker, the command line) has committed a write in between, that
snapshot is stale and SQLite refuses the upgrade at once with "database is locked"
(``SQLITE_BUSY_SNAPSHOT``): the busy timeout cannot help, as waiting would not make the
snapshot fresh. A transaction here is all-or-nothing work that usually writes (create,
regenerate, disable, the usage flush), so it begins with ``BEGIN IMMEDIATE``: it takes the
write lock first, waiting up to the busy timeout for another writer to finish, and then reads
what that writer committed. Reads outside a transaction are not affected.

:func:`wfa_keys.db.tortoise_config` names this module as the engine of ``sqlite://`` URLs.
"""

from __future__ import annotations

import sqlite3

from tortoise.backends.base.client import TransactionContext
from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteTransactionContext,
    SqliteTransactionWrapper,
)
from tortoise.exceptions import TransactionManagementError

__all__ = ["ImmediateSqliteClient", "client_class"]


class ImmediateSqliteClient(SqliteClient):
    """Tortoise's SQLite client; its transactions begin with ``BEGIN IMMEDIATE``."""

    def _in_transaction(self) -> TransactionContext:
        return SqliteTransactionContext(_ImmediateTransaction(self), self._lock)


class _ImmediateTransaction(SqliteTransactionWrapper, ImmediateSqliteClient):
    """Tortoise's transaction, begun with ``BEGIN IMMEDIATE`` (and a client of the class of
    the connection it came from, as Tortoise's own is)."""

    async def begin(self) -> None:
        try:
            await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TransactionManagementError(exc) from exc


#: The name Tortoise looks for in an engine module.
client_class = ImmediateSqliteClient
