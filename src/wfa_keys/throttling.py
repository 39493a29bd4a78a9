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


class DatabaseThrottleStore:
    """Throttle buckets as rows of ``throttle_slot``: one per live member.

    :meth:`reserve` runs in one transaction. On PostgreSQL it first takes
    ``pg_advisory_xact_lock(hashtext(bucket))``, so concurrent reserves of one bucket from any
    process run one after the other and never count past the limit; other buckets do not
    wait. On SQLite the transaction's first statement is a write, which takes the database's
    single write lock before anything is counted (other processes wait for it, up to the
    busy timeout, rather than fail).
    """

    def __init__(self, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._clock = clock

    async def reserve(self, bucket: str, member: str, *, limit: int, window: float) -> float | None:
        """Add or renew ``member`` unless ``bucket`` is full, else the seconds until one frees."""
        now = self._clock()
        expires_at = now + timedelta(seconds=window)
        async with in_transaction() as connection:
            if connection.capabilities.dialect == "postgres":
                await connection.execute_query(
                    "SELECT pg_advisory_xact_lock(hashtext($1))", [bucket]
                )
            await (
                ThrottleSlot.filter(bucket=bucket, expires_at__lte=now)
                .using_db(connection)
                .delete()
            )
            renewed = (
                await ThrottleSlot.filter(bucket=bucket, member=member)
                .using_db(connection)
                .update(expires_at=expires_at)
            )
            if renewed:
                return None
            live = await ThrottleSlot.filter(bucket=bucket).using_db(connection).count()
            if live < limit:
                await ThrottleSlot.create(
                    bucket=bucket, member=member, expires_at=expires_at, using_db=connection
                )
                return None
            oldest: list[Any] = (
                await ThrottleSlot.filter(bucket=bucket)
                .using_db(connection)
                .order_by("expires_at")
                .limit(1)
                .values_list("expires_at", flat=True)
            )
        return max(0.0, (oldest[0] - now).total_seconds()) if oldest else 0.0

    async def release(self, bucket: str, member: str) -> None:
        """Remove ``member`` from ``bucket``."""
        await ThrottleSlot.filter(bucket=bucket, member=member).delete()

    async def clear(self, bucket: str) -> None:
        """Remove every member of ``bucket``."""
        await ThrottleSlot.filter(bucket=bucket).delete()

    async def prune(self) -> int:
        """Delete every expired slot of every bucket; returns how many went."""
        deleted: int = await ThrottleSlot.filter(expires_at__lte=self._clock()).delete()
        return deleted


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
