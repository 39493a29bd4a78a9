"""The real Redis of the test machine (127.0.0.1:6379, database 5), or a skip outside CI."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

REDIS_URL = os.environ.get("WFA_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")


async def redis_or_skip() -> Redis:
    """A client of the test Redis; in CI (``CI`` set) a missing Redis fails the test."""
    client: Redis = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except OSError as exc:
        await client.aclose()
        message = f"no Redis at {REDIS_URL} ({type(exc).__name__})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return client


async def redis_prefix(client: Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"deploy:test:{uuid.uuid4().hex}:"
    yield prefix
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
