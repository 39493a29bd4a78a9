"""TTLCache: expiry and the size bound."""

from __future__ import annotations

from wfa_auth import TTLCache


async def test_values_expire_after_their_ttl() -> None:
    now = [0.0]
    cache = TTLCache(clock=lambda: now[0])
    await cache.set("a", 1, ttl=10)
    now[0] = 9.9
    assert await cache.get("a") == 1
    now[0] = 10.0
    assert await cache.get("a") is None
    assert len(cache) == 0


async def test_least_recently_used_values_go_first_beyond_the_bound() -> None:
    cache = TTLCache(max_entries=2)
    await cache.set("a", 1, ttl=60)
    await cache.set("b", 2, ttl=60)
    assert await cache.get("a") == 1
    await cache.set("c", 3, ttl=60)
    assert (await cache.get("a"), await cache.get("b"), await cache.get("c")) == (1, None, 3)


async def test_delete_and_non_positive_ttl_remove_the_value() -> None:
    cache = TTLCache()
    await cache.set("a", 1, ttl=60)
    await cache.delete("a")
    assert await cache.get("a") is None
    await cache.set("b", 1, ttl=60)
    await cache.set("b", 2, ttl=0)
    assert await cache.get("b") is None
    await cache.delete("missing")
