"""Regenerating with a grace period: the previous secret and its tokens work until it ends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from support.clock import Clock
from support.keys import CountingStore, CountingVerifier, basic, bearer, client_for
from wfa_auth import (
    ApiKeyAuthMiddleware,
    MemoryKeyRecord,
    MemoryTokenStore,
    Throttling,
    TTLCache,
    generate_key_secret,
)

Make = Callable[..., ApiKeyAuthMiddleware]
Key = tuple[MemoryKeyRecord, str]


async def whoami(app: Any, headers: dict[str, str]) -> Any:
    async with client_for(app) as client:
        return await client.get("/whoami", headers=headers)


async def token(app: Any, key_id: str, secret: str) -> Any:
    async with client_for(app) as client:
        return await client.post(
            "/v1/auth/api-key/token", json={"key_id": key_id, "key_secret": secret}
        )


async def test_both_secrets_work_during_the_grace_period_and_only_the_new_one_after(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier, key: Key
) -> None:
    record, old = key
    clock = Clock()
    app = make_middleware(clock=clock)
    assert (await whoami(app, basic(record.key_id, old))).status_code == 200
    _, new = store.regenerate(verifier, record.key_id, grace=timedelta(minutes=10), now=clock())
    await app.key_changed(record.key_id)
    assert (await whoami(app, basic(record.key_id, old))).status_code == 200
    assert (await whoami(app, basic(record.key_id, new))).status_code == 200
    clock.advance(9 * 60 + 59)
    assert (await whoami(app, basic(record.key_id, old))).status_code == 200
    clock.advance(1)  # the grace period ends: no key_changed needed, whatever is cached
    refused = await whoami(app, basic(record.key_id, old))
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_credentials")
    assert (await whoami(app, basic(record.key_id, new))).status_code == 200


async def test_no_cache_lets_the_previous_secret_outlive_its_grace_period(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier, key: Key
) -> None:
    # Long-lived caches: only the grace period's end can be what refuses the old secret.
    record, old = key
    clock = Clock()
    cache = TTLCache(clock=lambda: clock().timestamp())
    app = make_middleware(clock=clock, cache=cache)
    app.set_record_cache_ttl(3600)
    _, new = store.regenerate(verifier, record.key_id, grace=timedelta(seconds=30), now=clock())
    await app.key_changed(record.key_id)
    for _ in range(3):  # warm: memo, verified-credential cache and record cache all hold it
        assert (await whoami(app, basic(record.key_id, old))).status_code == 200
    calls = verifier.verify_calls
    clock.advance(30)
    refused = await whoami(app, basic(record.key_id, old))
    assert refused.status_code == 401
    assert verifier.verify_calls > calls  # checked again, not answered from a cache
    assert (await whoami(app, basic(record.key_id, new))).status_code == 200


async def test_without_a_grace_period_the_old_secret_is_refused_at_once(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier, key: Key
) -> None:
    record, old = key
    app = make_middleware()
    old_token = (await token(app, record.key_id, old)).json()["access_token"]
    _, new = store.regenerate(verifier, record.key_id)
    await app.key_changed(record.key_id)
    assert (await whoami(app, basic(record.key_id, old))).status_code == 401
    assert (await whoami(app, bearer(old_token))).status_code == 401
    assert (await whoami(app, basic(record.key_id, new))).status_code == 200


async def test_tokens_issued_before_the_regeneration_work_until_the_grace_period_ends(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier, key: Key
) -> None:
    record, old = key
    clock = Clock()
    tokens = MemoryTokenStore()
    app = make_middleware(clock=clock, token_store=tokens)
    old_token = (await token(app, record.key_id, old)).json()["access_token"]
    _, new = store.regenerate(verifier, record.key_id, grace=timedelta(seconds=60), now=clock())
    await app.key_changed(record.key_id)
    assert (await whoami(app, bearer(old_token))).status_code == 200
    # Obtained with the old secret during the grace period: tied to it, ends with it.
    during = (await token(app, record.key_id, old)).json()["access_token"]
    new_token = (await token(app, record.key_id, new)).json()["access_token"]
    assert (await whoami(app, bearer(during))).status_code == 200
    assert len(tokens.tokens) == 3
    clock.advance(60)
    for stale in (old_token, during):
        refused = await whoami(app, bearer(stale))
        assert (refused.status_code, refused.json()["error"]) == (401, "invalid_token")
    assert (await whoami(app, bearer(new_token))).status_code == 200
    assert len(tokens.tokens) == 1  # the refused ones were deleted


async def test_revoking_the_previous_secret_ends_the_grace_period_now(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier, key: Key
) -> None:
    record, old = key
    clock = Clock()
    app = make_middleware(clock=clock)
    old_token = (await token(app, record.key_id, old)).json()["access_token"]
    store.regenerate(verifier, record.key_id, grace=timedelta(days=1), now=clock())
    await app.key_changed(record.key_id)
    assert (await whoami(app, basic(record.key_id, old))).status_code == 200
    store.revoke_previous_secret(record.key_id)
    await app.key_changed(record.key_id)
    assert (await whoami(app, basic(record.key_id, old))).status_code == 401
    assert (await whoami(app, bearer(old_token))).status_code == 401


async def test_a_second_regeneration_keeps_only_the_secret_just_replaced(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier, key: Key
) -> None:
    record, first = key
    clock = Clock()
    app = make_middleware(clock=clock)
    _, second = store.regenerate(verifier, record.key_id, grace=timedelta(hours=1), now=clock())
    _, third = store.regenerate(verifier, record.key_id, grace=timedelta(hours=1), now=clock())
    await app.key_changed(record.key_id)
    assert (await whoami(app, basic(record.key_id, first))).status_code == 401
    assert (await whoami(app, basic(record.key_id, second))).status_code == 200
    assert (await whoami(app, basic(record.key_id, third))).status_code == 200


async def test_a_wrong_secret_during_the_grace_period_is_throttled_like_any_other(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier, key: Key
) -> None:
    record, _ = key
    clock = Clock()
    app = make_middleware(clock=clock, throttling=Throttling(max_failures_per_key_and_ip=2))
    store.regenerate(verifier, record.key_id, grace=timedelta(hours=1), now=clock())
    await app.key_changed(record.key_id)
    statuses = []
    for _ in range(3):
        response = await whoami(app, basic(record.key_id, generate_key_secret()))
        statuses.append(response.status_code)
    assert statuses == [401, 401, 429]
    assert verifier.verify_calls == 4  # two per wrong secret (current, previous), none throttled


async def test_an_expired_grace_period_left_in_the_record_is_ignored(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier, key: Key
) -> None:
    record, old = key
    clock = Clock()
    store.regenerate(verifier, record.key_id, grace=timedelta(seconds=1), now=clock())
    clock.advance(5)
    app = make_middleware(clock=clock)
    assert (await whoami(app, basic(record.key_id, old))).status_code == 401
    assert verifier.verified_hashes == [store.keys[record.key_id].secret_hash]


def test_the_memory_store_refuses_a_negative_grace_period(
    store: CountingStore, verifier: CountingVerifier, key: Key
) -> None:
    record, _ = key
    with pytest.raises(ValueError, match="grace"):
        store.regenerate(verifier, record.key_id, grace=timedelta(seconds=-1))
    assert store.keys[record.key_id] == record
