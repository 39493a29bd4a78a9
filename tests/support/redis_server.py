"""The real Redis of the test machine, or a skip outside CI.

``WFA_TEST_REDIS_URL`` names it (``redis://127.0.0.1:6379/5`` when unset). Every key a test
writes starts with :data:`SESSION_PREFIX`, unique to the pytest session, and is deleted by
the test; the end of the session checks that none is left (tests/conftest.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

REDIS_URL = os.environ.get("WFA_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
#: The start of every key this pytest session writes to the test Redis.
SESSION_PREFIX = f"wfa-keys-test:{uuid.uuid4().hex[:12]}:"
#: Set once a test used the test Redis: the end of the session then checks it.
used = False


async def redis_or_skip() -> Redis:
    """A client of the test Redis; in CI (``CI`` set) a missing Redis fails the test."""
    global used
    client: Redis = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except OSError as exc:
        await client.aclose()
        message = f"no Redis at {REDIS_URL} ({type(exc).__name__})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    used = True
    return client


async def redis_prefix(client: Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"{SESSION_PREFIX}{uuid.uuid4().hex}:"
    yield prefix
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)


def leftover_keys() -> list[str]:
    """The keys of this session still in the test Redis (synchronously, for the session's end)."""
    from redis import Redis as SyncRedis

    with SyncRedis.from_url(REDIS_URL) as client:
        return [key.decode() for key in client.scan_iter(match=SESSION_PREFIX + "*")]


def all_keys() -> set[str]:
    """Every key of the test Redis database, anyone's (none when no Redis answers)."""
    from redis import Redis as SyncRedis
    from redis.exceptions import ConnectionError as RedisConnectionError

    try:
        with SyncRedis.from_url(REDIS_URL, socket_connect_timeout=5) as client:
            return {key.decode() for key in client.scan_iter()}
    except (OSError, RedisConnectionError):
        return set()
