"""The shared rate-limit and quota counters: the database's and Redis's, on the real servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from tortoise.context import TortoiseContext

from support.redis_server import redis_or_skip, redis_prefix
from wfa_auth import CounterStore, MemoryCounterStore
from wfa_keys.counters import (
    DatabaseCounterStore,
    RedisCounterStore,
    close_counter_store,
    counter_store_for,
)
from wfa_keys.models import LimitCounter

BUCKET = "wfak_aaaaaaaaaaaaaaaaaaaa:r10"


@pytest.fixture(params=["memory", "database", "redis"])
async def store(request: pytest.FixtureRequest, db: TortoiseContext) -> AsyncIterator[CounterStore]:
    if request.param == "memory":
        yield MemoryCounterStore()
        return
    if request.param == "database":
        yield DatabaseCounterStore()
        return
    client = await redis_or_skip()
    prefixes = redis_prefix(client)
    yield RedisCounterStore(client, prefix=await anext(prefixes))
    with pytest.raises(StopAsyncIteration):
        await anext(prefixes)
    await client.aclose()


async def test_a_take_grants_only_what_the_window_has_left(store: CounterStore) -> None:
    first = await store.take(BUCKET, 100, 40, limit=100, span=11)
    second = await store.take(BUCKET, 105, 40, limit=100, span=11)
    third = await store.take(BUCKET, 110, 40, limit=100, span=11)
    assert (first.granted, first.total, first.oldest) == (40, 40, 100)
    assert (second.granted, second.total, second.oldest) == (40, 80, 100)
    assert (third.granted, third.total, third.oldest) == (20, 100, 100)
    full = await store.take(BUCKET, 110, 1, limit=100, span=11)
    assert (full.granted, full.total) == (0, 100)
    # Slot 100 leaves the window of span 11 at slot 111: its 40 units are free again.
    later = await store.take(BUCKET, 111, 50, limit=100, span=11)
    assert (later.granted, later.total, later.oldest) == (40, 100, 105)


async def test_units_given_back_are_uncounted_never_below_zero(store: CounterStore) -> None:
    await store.take(BUCKET, 7, 10, limit=100, span=1)
    await store.give_back({(BUCKET, 7): 4})
    assert await store.count(BUCKET, 7) == 6
    await store.give_back({(BUCKET, 7): 50, ("wfak_other:qd", 7): 3})
    assert await store.count(BUCKET, 7) == 0
    assert await store.count("wfak_other:qd", 7) == 0


async def test_concurrent_takes_never_grant_past_the_limit(store: CounterStore) -> None:
    takes = await asyncio.gather(*(store.take(BUCKET, 1, 7, limit=100, span=1) for _ in range(30)))
    assert sum(t.granted for t in takes) == 100
    assert await store.count(BUCKET, 1) == 100


async def test_the_database_store_prunes_forgotten_buckets(db: TortoiseContext) -> None:
    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    store = DatabaseCounterStore(clock=lambda: now[0])
    await store.take(BUCKET, 1, 5, limit=10, span=1)
    now[0] += timedelta(days=39)
    assert await store.prune() == 0
    now[0] += timedelta(days=2)
    assert await store.prune() == 1
    assert await LimitCounter.all().count() == 0


async def test_the_setting_picks_the_store(db: TortoiseContext) -> None:
    assert isinstance(counter_store_for("memory"), MemoryCounterStore)
    assert isinstance(counter_store_for("database"), DatabaseCounterStore)
    redis = counter_store_for("redis://127.0.0.1:6379/5")
    assert isinstance(redis, RedisCounterStore)
    await close_counter_store(redis)
