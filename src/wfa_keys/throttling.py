"""Throttle counters shared by every server process: in the database or in Redis.

Both implement :class:`wfa_auth.ThrottleStore` with the semantics of
:class:`wfa_auth.MemoryThrottleStore` (a bucket of at most ``limit`` live members, each
alive ``window`` seconds), made atomic across processes and hosts: PostgreSQL takes a
transaction-scoped advisory lock on the bucket, SQLite serializes writers, Redis runs one
Lua script. ``WFA_THROTTLE_STORE`` picks one (see :func:`throttle_store_for`), in the way
Kong's rate-limiting plugin offers ``local``, ``cluster`` and ``redis`` policies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tortoise.connection import get_connection
from tortoise.transactions import in_transaction

from wfa_auth import MemoryThrottleStore, ThrottleStore
from wfa_keys.models import ThrottleSlot

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "DatabaseThrottleStore",
    "RedisThrottleStore",
    "close_throttle_store",
    "throttle_store_for",
]


def _utcnow() -> datetime:
    return datetime.now(UTC)


#: The reserve on PostgreSQL, after the bucket's advisory lock, in one statement: expired
#: members (but the one reserving) go, and the member is kept (added, or renewed) when it is
#: live already or fewer than the limit of others are. $1 bucket, $2 member, $3 now, $4 its
#: new expiry, $5 the limit. Each row is changed by one part only (the member's own expired
#: row, if any, is renewed, not deleted), as PostgreSQL requires of one statement.
_RESERVE_POSTGRES = """
WITH "gone" AS (
    DELETE FROM "throttle_slot"
    WHERE "bucket" = $1 AND "expires_at" <= $3 AND "member" <> $2
), "live" AS (
    SELECT count(*) FILTER (WHERE "member" <> $2) AS "others",
           bool_or("member" = $2) AS "mine",
           min("expires_at") AS "oldest"
    FROM "throttle_slot"
    WHERE "bucket" = $1 AND "expires_at" > $3
), "kept" AS (
    INSERT INTO "throttle_slot" ("bucket", "member", "expires_at")
    SELECT $1, $2, $4 FROM "live" WHERE "live"."mine" OR "live"."others" < $5
    ON CONFLICT ("bucket", "member") DO UPDATE SET "expires_at" = excluded."expires_at"
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM "kept") AS "kept", (SELECT "oldest" FROM "live") AS "oldest"
"""


class DatabaseThrottleStore:
    """Throttle buckets as rows of ``throttle_slot``: one per live member.

    :meth:`reserve` runs in one transaction. On PostgreSQL it first takes
    ``pg_advisory_xact_lock(hashtext(bucket))``, so concurrent reserves of one bucket from any
    process run one after the other and never count past the limit; other buckets do not
    wait. The reserve itself is then one statement, sent as it is (every cold
    authentication makes three reserves and two releases: built by Tortoise, one statement
    each step, they took most of the process's time for a new key). On SQLite the
    transaction's first statement is a write, which takes the database's single write lock
    before anything is counted (other processes wait for it, up to the busy timeout, rather
    than fail).
    """

    def __init__(self, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._clock = clock

    async def reserve(self, bucket: str, member: str, *, limit: int, window: float) -> float | None:
        """Add or renew ``member`` unless ``bucket`` is full, else the seconds until one frees."""
        now = self._clock()
        expires_at = now + timedelta(seconds=window)
        async with in_transaction() as connection:
            if connection.capabilities.dialect == "postgres":
                # The lock first, in a statement of its own: the reserve's snapshot is taken
                # once it is held, and sees what the bucket's last holder committed.
                await connection.execute_query(
                    "SELECT pg_advisory_xact_lock(hashtext($1))", [bucket]
                )
                (row,) = await connection.execute_query_dict(
                    _RESERVE_POSTGRES, [bucket, member, now, expires_at, limit]
                )
                kept, oldest = row["kept"], row["oldest"]
            else:
                kept, oldest = await self._reserve_sqlite(
                    connection, bucket, member, now, expires_at, limit
                )
        if kept:
            return None
        return max(0.0, (oldest - now).total_seconds()) if oldest else 0.0

    @staticmethod
    async def _reserve_sqlite(
        connection: Any,
        bucket: str,
        member: str,
        now: datetime,
        expires_at: datetime,
        limit: int,
    ) -> tuple[bool, datetime | None]:
        """The reserve on SQLite, in the caller's transaction: kept, else the oldest expiry."""
        await ThrottleSlot.filter(bucket=bucket, expires_at__lte=now).using_db(connection).delete()
        renewed = (
            await ThrottleSlot.filter(bucket=bucket, member=member)
            .using_db(connection)
            .update(expires_at=expires_at)
        )
        if renewed:
            return True, None
        live = await ThrottleSlot.filter(bucket=bucket).using_db(connection).count()
        if live < limit:
            await ThrottleSlot.create(
                bucket=bucket, member=member, expires_at=expires_at, using_db=connection
            )
            return True, None
        oldest: list[Any] = (
            await ThrottleSlot.filter(bucket=bucket)
            .using_db(connection)
            .order_by("expires_at")
            .limit(1)
            .values_list("expires_at", flat=True)
        )
        return False, oldest[0] if oldest else None

    async def release(self, bucket: str, member: str) -> None:
        """Remove ``member`` from ``bucket``."""
        await _delete('"bucket" = {} AND "member" = {}', bucket, member)

    async def clear(self, bucket: str) -> None:
        """Remove every member of ``bucket``."""
        await _delete('"bucket" = {}', bucket)

    async def prune(self) -> int:
        """Delete every expired slot of every bucket; returns how many went."""
        deleted: int = await ThrottleSlot.filter(expires_at__lte=self._clock()).delete()
        return deleted


async def _delete(where: str, *values: str) -> None:
    """Delete the slots ``where`` says (its ``{}`` the places of ``values``), sent as it is:
    a release follows every cold authentication."""
    connection = get_connection("default")
    places = [f"${n}" for n in range(1, len(values) + 1)]
    if connection.capabilities.dialect != "postgres":
        places = ["?"] * len(values)
    # The condition is this module's; every value is a parameter.
    sql = 'DELETE FROM "throttle_slot" WHERE ' + where.format(*places)  # noqa: S608
    await connection.execute_query(sql, list(values))


#: KEYS[1] the bucket; ARGV now (ms), window (ms), limit, member. -1: reserved; else the
#: milliseconds until the oldest member expires. Members are scored by their expiry.
_RESERVE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[4]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now + window, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
  return -1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #oldest == 0 then
  return window
end
return math.max(0, tonumber(oldest[2]) - now)
"""


class RedisThrottleStore:
    """Throttle buckets as Redis sorted sets (member -> expiry in ms), under ``prefix``.

    :meth:`reserve` is one Lua script (ZREMRANGEBYSCORE, ZSCORE, ZCARD, ZADD, PEXPIRE), so it
    is atomic for every process and host using the Redis server; each bucket expires by
    itself once its newest member has. Expiry times come from this host's clock: keep the
    hosts' clocks in sync (NTP).
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "wfa-keys:throttle:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self._clock = clock
        self._reserve = client.register_script(_RESERVE)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisThrottleStore:
        """A store on the Redis server at ``url`` (``redis://host:port/db``)."""
        from redis.asyncio import Redis

        return cls(Redis.from_url(url), **options)

    async def reserve(self, bucket: str, member: str, *, limit: int, window: float) -> float | None:
        """Add or renew ``member`` unless ``bucket`` is full, else the seconds until one frees."""
        now_ms = int(self._clock() * 1000)
        result = await self._reserve(
            keys=[self.prefix + bucket],
            args=[now_ms, max(1, int(window * 1000)), limit, member],
        )
        wait_ms = int(result)
        return None if wait_ms < 0 else wait_ms / 1000

    async def release(self, bucket: str, member: str) -> None:
        """Remove ``member`` from ``bucket``."""
        await self.client.zrem(self.prefix + bucket, member)

    async def clear(self, bucket: str) -> None:
        """Remove every member of ``bucket``."""
        await self.client.delete(self.prefix + bucket)

    async def ping(self) -> None:
        """Raise when Redis does not answer (for ``/healthz``)."""
        await self.client.ping()

    async def aclose(self) -> None:
        """Close the connections to Redis."""
        await self.client.aclose()


def throttle_store_for(setting: str) -> ThrottleStore:
    """The store named by ``WFA_THROTTLE_STORE``: ``memory``, ``database`` or a Redis URL."""
    if setting == "memory":
        return MemoryThrottleStore()
    if setting == "database":
        return DatabaseThrottleStore()
    return RedisThrottleStore.from_url(setting)


async def close_throttle_store(store: ThrottleStore) -> None:
    """Release what the store holds (Redis connections) at shutdown."""
    if isinstance(store, RedisThrottleStore):
        await store.aclose()
