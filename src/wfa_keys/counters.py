"""Rate-limit and quota counters shared by every server process: in the database or Redis.

Both implement :class:`wfa_auth.CounterStore` with the semantics of
:class:`wfa_auth.MemoryCounterStore` (per bucket, a count per slot; a take grants units
only within the limit over the window's slots), atomic across processes and hosts:
PostgreSQL takes a transaction-scoped advisory lock on the bucket, SQLite serializes
writers, Redis runs one Lua script. ``WFA_THROTTLE_STORE`` picks one, as it does for the
throttles (:func:`counter_store_for`). The middleware leases units a chunk at a time, so
these are called once per chunk, never once per request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from wfa_auth import CounterStore, MemoryCounterStore, Taken
from wfa_keys.models import LimitCounter

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "DatabaseCounterStore",
    "RedisCounterStore",
    "close_counter_store",
    "counter_store_for",
]

#: How long a slot's row (or a bucket's hash) outlives its last take at most: longer than
#: a month, the longest quota period. Live buckets drop their old slots on every take.
COUNTER_TTL = timedelta(days=40)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DatabaseCounterStore:
    """Counters as rows of ``limit_counter``: one per bucket and slot.

    :meth:`take` runs in one transaction. On PostgreSQL it first takes
    ``pg_advisory_xact_lock(hashtext(bucket))``, so concurrent takes of one bucket from any
    process run one after the other and never grant past the limit. On SQLite the first
    statement is a write (the delete of the bucket's old slots), which takes the database's
    single write lock before anything is counted.
    """

    def __init__(self, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._clock = clock

    async def take(self, bucket: str, slot: int, amount: int, *, limit: int, span: int) -> Taken:
        """Grant up to ``amount`` units in ``slot`` within ``limit`` over ``span`` slots."""
        first = slot - span + 1
        async with in_transaction() as connection:
            if connection.capabilities.dialect == "postgres":
                await connection.execute_query(
                    "SELECT pg_advisory_xact_lock(hashtext($1))", [bucket]
                )
            await LimitCounter.filter(bucket=bucket, slot__lt=first).using_db(connection).delete()
            rows: list[Any] = (
                await LimitCounter.filter(bucket=bucket, slot__gte=first, slot__lte=slot)
                .using_db(connection)
                .values_list("slot", "count")
            )
            total = sum(count for _, count in rows)
            granted = max(0, min(amount, limit - total))
            if granted:
                expires_at = self._clock() + COUNTER_TTL
                updated = (
                    await LimitCounter.filter(bucket=bucket, slot=slot)
                    .using_db(connection)
                    .update(count=F("count") + granted, expires_at=expires_at)
                )
                if not updated:
                    await LimitCounter.create(
                        bucket=bucket,
                        slot=slot,
                        count=granted,
                        expires_at=expires_at,
                        using_db=connection,
                    )
        live = [s for s, count in rows if count > 0]
        if granted:
            live.append(slot)
        return Taken(granted, total + granted, min(live) if live else slot)

    async def give_back(self, units: Mapping[tuple[str, int], int]) -> None:
        """Uncount units taken but not used, in one transaction; never below zero."""
        async with in_transaction() as connection:
            for (bucket, slot), amount in units.items():
                rows = LimitCounter.filter(bucket=bucket, slot=slot).using_db(connection)
                if not await rows.filter(count__gte=amount).update(count=F("count") - amount):
                    await rows.update(count=0)

    async def count(self, bucket: str, slot: int) -> int:
        """The units counted in one slot of a bucket."""
        counts: list[Any] = await LimitCounter.filter(bucket=bucket, slot=slot).values_list(
            "count", flat=True
        )
        return int(counts[0]) if counts else 0

    async def prune(self) -> int:
        """Delete the rows of buckets no process has taken from for a long time."""
        deleted: int = await LimitCounter.filter(expires_at__lte=self._clock()).delete()
        return deleted


#: KEYS[1] the bucket's hash (slot -> count); ARGV slot, amount, limit, span, ttl (s).
#: Returns {granted, total, oldest}.
_TAKE = """
local slot = tonumber(ARGV[1])
local first = slot - tonumber(ARGV[4]) + 1
local all = redis.call('HGETALL', KEYS[1])
local total = 0
local oldest = slot
for i = 1, #all, 2 do
  local s = tonumber(all[i])
  local c = tonumber(all[i + 1])
  if s < first then
    redis.call('HDEL', KEYS[1], all[i])
  elseif s <= slot then
    total = total + c
    if c > 0 and s < oldest then oldest = s end
  end
end
local granted = math.min(tonumber(ARGV[2]), tonumber(ARGV[3]) - total)
if granted < 0 then granted = 0 end
if granted > 0 then
  redis.call('HINCRBY', KEYS[1], ARGV[1], granted)
  total = total + granted
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
return {granted, total, oldest}
"""

#: KEYS the buckets' hashes; ARGV slot and amount for each, in turn. Never below zero.
_GIVE_BACK = """
for i = 1, #KEYS do
  local field = ARGV[2 * i - 1]
  local count = redis.call('HGET', KEYS[i], field)
  if count then
    local left = tonumber(count) - tonumber(ARGV[2 * i])
    if left < 0 then left = 0 end
    redis.call('HSET', KEYS[i], field, left)
  end
end
return 0
"""


class RedisCounterStore:
    """Counters as Redis hashes (slot -> count), one per bucket, under ``prefix``.

    :meth:`take` is one Lua script, so it is atomic for every process and host using the
    Redis server; a bucket's hash expires 40 days after its last take.
    """

    def __init__(self, client: Redis, *, prefix: str = "wfa-keys:limit:") -> None:
        self.client = client
        self.prefix = prefix
        self._take = client.register_script(_TAKE)
        self._give_back = client.register_script(_GIVE_BACK)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisCounterStore:
        """A store on the Redis server at ``url`` (``redis://host:port/db``)."""
        from redis.asyncio import Redis

        return cls(Redis.from_url(url), **options)

    async def take(self, bucket: str, slot: int, amount: int, *, limit: int, span: int) -> Taken:
        """Grant up to ``amount`` units in ``slot`` within ``limit`` over ``span`` slots."""
        ttl = int(COUNTER_TTL.total_seconds())
        granted, total, oldest = await self._take(
            keys=[self.prefix + bucket], args=[slot, amount, limit, span, ttl]
        )
        return Taken(int(granted), int(total), int(oldest))

    async def give_back(self, units: Mapping[tuple[str, int], int]) -> None:
        """Uncount units taken but not used, in one script; never below zero."""
        keys = [self.prefix + bucket for bucket, _ in units]
        args: list[int] = []
        for (_, slot), amount in units.items():
            args += [slot, amount]
        await self._give_back(keys=keys, args=args)

    async def count(self, bucket: str, slot: int) -> int:
        """The units counted in one slot of a bucket."""
        value = await self.client.hget(self.prefix + bucket, str(slot))
        return int(value) if value is not None else 0

    async def aclose(self) -> None:
        """Close the connections to Redis."""
        await self.client.aclose()


def counter_store_for(setting: str) -> CounterStore:
    """The store named by ``WFA_THROTTLE_STORE``: ``memory``, ``database`` or a Redis URL."""
    if setting == "memory":
        return MemoryCounterStore()
    if setting == "database":
        return DatabaseCounterStore()
    return RedisCounterStore.from_url(setting)


async def close_counter_store(store: CounterStore) -> None:
    """Release what the store holds (Redis connections) at shutdown."""
    if isinstance(store, RedisCounterStore):
        await store.aclose()
