"""Announcing committed changes that affect authentication to every server process.

Call :func:`publish_key_change` inside the transaction of the change: the announcement then
exists if and only if the change is committed. Every process's listener (see
:mod:`wfa_keys.changes` ``ChangeListener``) drops what it cached for that key.

On PostgreSQL the announcement is a ``NOTIFY`` on :data:`CHANNEL` (delivered at commit); on
every database it is also a row of ``key_change``, which SQLite processes poll and which lets
a PostgreSQL listener that lost its connection catch up.
"""

from __future__ import annotations

from tortoise.connection import get_connection

from wfa_keys.models import KeyChange

__all__ = ["ALL_KEYS", "CHANNEL", "publish_key_change"]

#: The PostgreSQL notification channel.
CHANNEL = "wfa_keys_key_changes"
#: The payload that means "every key" (a user, role or subscription change).
ALL_KEYS = "*"


def _is_postgres() -> bool:
    return get_connection("default").capabilities.dialect == "postgres"


async def publish_key_change(key_id: str | None) -> None:
    """Announce, in the caller's transaction, that ``key_id`` changed (None: every key)."""
    change = await KeyChange.create(key_id=key_id)
    if _is_postgres():
        payload = f"{change.id}:{key_id or ALL_KEYS}"
        await get_connection("default").execute_query(
            "SELECT pg_notify($1, $2)", [CHANNEL, payload]
        )
