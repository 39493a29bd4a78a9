"""The shared throttle stores: the database's and Redis's, against the real servers."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tortoise.context import TortoiseContext

from support.redis_server import REDIS_URL, redis_or_skip, redis_prefix
from wfa_auth import MemoryThrottleStore, ThrottleStore
from wfa_keys.models import ThrottleSlot
from wfa_keys.throttling import DatabaseThrottleStore, RedisThrottleStore, throttle_store_for

BUCKET = "b" * 64
WINDOW = 60.0


class Clock:
    """A clock the test moves by hand; both stores' kinds of time."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def datetime(self) -> datetime:
        return self.now

    def seconds(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


StoreFactory = Callable[[Clock], ThrottleStore]


@pytest.fixture(params=["database", "redis"])
async def make_store(
    request: pytest.FixtureRequest, db: TortoiseContext
) -> AsyncIterator[StoreFactory]:
    """A factory of stores of one kind, on one clock."""
    if request.param == "database":
        yield lambda clock: DatabaseThrottleStore(clock=clock.datetime)
        return
    client = await redis_or_skip()
    prefixes = redis_prefix(client)
    prefix = await anext(prefixes)
    yield lambda clock: RedisThrottleStore(client, prefix=prefix, clock=clock.seconds)
    with pytest.raises(StopAsyncIteration):
        await anext(prefixes)
    await client.aclose()


async def test_concurrent_reserves_never_exceed_the_limit(make_store: StoreFactory) -> None:
    store = make_store(Clock())
    results = await asyncio.gather(
        *(store.reserve(BUCKET, f"m{i}", limit=5, window=WINDOW) for i in range(30))
    )
    assert sum(result is None for result in results) == 5
    refused = [result for result in results if result is not None]
    assert all(0 < wait <= WINDOW for wait in refused)


async def test_a_member_in_the_bucket_is_renewed_not_counted_twice(
    make_store: StoreFactory,
) -> None:
    clock = Clock()
    store = make_store(clock)
    assert await store.reserve(BUCKET, "a", limit=2, window=WINDOW) is None
    clock.advance(30)
    assert await store.reserve(BUCKET, "a", limit=2, window=WINDOW) is None
    assert await store.reserve(BUCKET, "b", limit=2, window=WINDOW) is None
    wait = await store.reserve(BUCKET, "c", limit=2, window=WINDOW)
    # "a" was renewed 30 s in: the first slot frees at 90 s, 60 s from now.
    assert wait == pytest.approx(60, abs=0.01)


async def test_members_leave_the_bucket_once_their_window_has_passed(
    make_store: StoreFactory,
) -> None:
    clock = Clock()
    store = make_store(clock)
    for member in ("a", "b"):
        assert await store.reserve(BUCKET, member, limit=2, window=10) is None
    clock.advance(4)
    assert await store.reserve(BUCKET, "c", limit=2, window=10) == pytest.approx(6, abs=0.01)
    clock.advance(6)
    assert await store.reserve(BUCKET, "c", limit=2, window=10) is None


async def test_release_frees_one_slot_and_clear_frees_the_bucket(
    make_store: StoreFactory,
) -> None:
    store = make_store(Clock())
    for member in ("a", "b"):
        await store.reserve(BUCKET, member, limit=2, window=WINDOW)
    other = "o" * 64
    await store.reserve(other, "a", limit=1, window=WINDOW)
    await store.release(BUCKET, "a")
    assert await store.reserve(BUCKET, "c", limit=2, window=WINDOW) is None
    assert await store.reserve(BUCKET, "d", limit=2, window=WINDOW) is not None
    await store.clear(BUCKET)
    assert await store.reserve(BUCKET, "d", limit=2, window=WINDOW) is None
    # Other buckets are untouched.
    assert await store.reserve(other, "b", limit=1, window=WINDOW) is not None


_RESERVER = """
import asyncio, json, sys
from wfa_keys.db import database
from wfa_keys.throttling import DatabaseThrottleStore

async def main():
    url, name, count, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    async with database(url, migrate=False):
        store = DatabaseThrottleStore()
        results = await asyncio.gather(*(
            store.reserve("p" * 64, f"{name}-{i}", limit=limit, window=600)
            for i in range(count)
        ))
    print(json.dumps([r is None for r in results]))

asyncio.run(main())
"""


async def test_reserves_from_two_processes_never_exceed_the_limit(
    db: TortoiseContext, database_url: str
) -> None:
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _RESERVER,
            database_url,
            name,
            "20",
            "15",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for name in ("first", "second")
    ]
    outputs = []
    for process in processes:
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 0, err.decode()
        outputs.append(json.loads(out))
    assert sum(sum(reserved) for reserved in outputs) == 15
    assert await ThrottleSlot.filter(bucket="p" * 64).count() == 15


async def test_pruning_deletes_only_expired_slots(db: TortoiseContext) -> None:
    clock = Clock()
    store = DatabaseThrottleStore(clock=clock.datetime)
    await store.reserve(BUCKET, "short", limit=5, window=1)
    await store.reserve(BUCKET, "long", limit=5, window=100)
    clock.advance(2)
    assert await store.prune() == 1
    members: list[Any] = await ThrottleSlot.filter(bucket=BUCKET).values_list("member", flat=True)
    assert members == ["long"]


async def test_the_setting_picks_the_store() -> None:
    assert isinstance(throttle_store_for("memory"), MemoryThrottleStore)
    assert isinstance(throttle_store_for("database"), DatabaseThrottleStore)
    redis_store = throttle_store_for(REDIS_URL)
    assert isinstance(redis_store, RedisThrottleStore)
    await redis_store.aclose()


async def test_a_limit_of_zero_only_renews_a_member_already_present(
    make_store: StoreFactory,
) -> None:
    clock = Clock()
    store = make_store(clock)

    assert await store.reserve(BUCKET, "absent", limit=0, window=WINDOW) is not None
    assert await store.reserve(BUCKET, "ok", limit=1, window=WINDOW) is None
    assert await store.reserve(BUCKET, "ok", limit=0, window=WINDOW) is None
    assert await store.reserve(BUCKET, "other", limit=0, window=WINDOW) is not None
    clock.advance(WINDOW + 1)
    assert await store.reserve(BUCKET, "ok", limit=0, window=WINDOW) is not None


async def test_the_memory_store_answers_a_limit_of_zero_alike() -> None:
    clock = Clock()
    store = MemoryThrottleStore(clock=clock.seconds)

    assert await store.reserve(BUCKET, "absent", limit=0, window=WINDOW) is not None
    assert await store.reserve(BUCKET, "ok", limit=1, window=WINDOW) is None
    assert await store.reserve(BUCKET, "ok", limit=0, window=WINDOW) is None
    assert await store.reserve(BUCKET, "other", limit=0, window=WINDOW) is not None
