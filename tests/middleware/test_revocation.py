"""Change notifications: key_changed, all_keys_changed and set_record_cache_ttl, in process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from support.clock import MonotonicClock
from support.keys import CountingStore, CountingVerifier, basic, bearer, client_for
from wfa_auth import ApiKeyAuthMiddleware, Caching, MemoryKeyRecord, MemoryTokenStore, TTLCache

Make = Callable[..., ApiKeyAuthMiddleware]
Key = tuple[MemoryKeyRecord, str]


async def whoami(app: Any, headers: dict[str, str]) -> Any:
    async with client_for(app) as client:
        return await client.get("/whoami", headers=headers)


async def issue(app: Any, record: MemoryKeyRecord, secret: str) -> str:
    async with client_for(app) as client:
        response = await client.post(
            "/v1/auth/api-key/token", json={"key_id": record.key_id, "key_secret": secret}
        )
    token: str = response.json()["access_token"]
    return token


async def test_a_token_deleted_by_another_process_is_refused_once_key_changed_arrives(
    make_middleware: Make, key: Key, store: CountingStore
) -> None:
    record, secret = key
    shared_tokens = MemoryTokenStore()
    app = make_middleware(token_store=shared_tokens, caching=Caching(record_ttl=3600))
    token = await issue(app, record, secret)
    assert (await whoami(app, bearer(token))).status_code == 200
    shared_tokens.tokens.clear()  # another process revoked it
    assert (await whoami(app, bearer(token))).status_code == 200  # not told yet
    await app.key_changed(record.key_id)
    response = await whoami(app, bearer(token))
    assert (response.status_code, response.json()["error"]) == (401, "invalid_token")


async def test_key_changed_drops_only_that_keys_cached_record(
    make_middleware: Make, key: Key, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = key
    other, other_secret = store.create_key(
        verifier, name="other", owner_email="bob@example.com", organization_name="Acme"
    )
    app = make_middleware(caching=Caching(record_ttl=3600))
    await whoami(app, basic(record.key_id, secret))
    await whoami(app, basic(other.key_id, other_secret))
    lookups = store.lookups
    await app.key_changed(record.key_id)
    await whoami(app, basic(record.key_id, secret))
    await whoami(app, basic(other.key_id, other_secret))
    assert store.lookups == lookups + 1
    # The verified secret stays remembered: looking the record up again costs no argon2.
    assert verifier.verify_calls == 2


async def test_all_keys_changed_checks_every_cached_record_and_token_again(
    make_middleware: Make, key: Key, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = key
    other, other_secret = store.create_key(
        verifier, name="other", owner_email="bob@example.com", organization_name="Acme"
    )
    tokens = MemoryTokenStore()
    app = make_middleware(token_store=tokens, caching=Caching(record_ttl=3600))
    token = await issue(app, other, other_secret)
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200
    assert (await whoami(app, bearer(token))).status_code == 200
    store.update(record.key_id, owner_is_active_admin=False)  # the owner was deactivated
    tokens.tokens.clear()
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200  # cached
    app.all_keys_changed()
    refused = await whoami(app, basic(record.key_id, secret))
    assert refused.json()["error"] == "key_owner_inactive"
    assert (await whoami(app, bearer(token))).json()["error"] == "invalid_token"


async def test_set_record_cache_ttl_applies_to_records_read_from_then_on(
    make_middleware: Make, key: Key, store: CountingStore
) -> None:
    record, secret = key
    timer = MonotonicClock()
    app = make_middleware(
        timer=timer, cache=TTLCache(clock=timer), caching=Caching(record_ttl=3600)
    )
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200
    app.set_record_cache_ttl(5)  # e.g. the change feed was lost
    store.update(record.key_id, enabled=False)  # changed by another process, unannounced
    timer.advance(100)
    # Read before the call: still trusted for its hour.
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200
    app.all_keys_changed()  # what a process does when its feed comes back or is lost
    store.update(record.key_id, enabled=True)
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200
    store.update(record.key_id, enabled=False)
    timer.advance(4)
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200
    timer.advance(1)
    assert (await whoami(app, basic(record.key_id, secret))).json()["error"] == "key_disabled"


@pytest.mark.parametrize("seconds", [0, -1])
def test_a_record_cache_ttl_must_be_positive(make_middleware: Make, seconds: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        make_middleware().set_record_cache_ttl(seconds)
