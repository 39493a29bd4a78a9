"""What a process remembers between requests stays within ``Caching.max_warm_entries``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from support.keys import CountingStore, CountingVerifier, basic, client_for
from wfa_auth import ApiKeyAuthMiddleware, Caching, KeyCredentials, TTLCache
from wfa_auth._errors import AuthenticationRefused

Make = Callable[..., ApiKeyAuthMiddleware]


async def call(app: ApiKeyAuthMiddleware, headers: dict[str, str]) -> int:
    async with client_for(app) as client:
        status: int = (await client.get("/whoami", headers=headers)).status_code
    return status


def keys(store: CountingStore, verifier: CountingVerifier, count: int) -> list[dict[str, str]]:
    """The Basic headers of ``count`` new keys."""
    headers = []
    for n in range(count):
        record, secret = store.create_key(
            verifier, name=f"k{n}", owner_email="ada@example.com", organization_name="Acme"
        )
        headers.append(basic(record.key_id, secret))
    return headers


async def test_the_warm_memo_keeps_one_entry_per_credential_and_drops_the_least_recently_used(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier
) -> None:
    first, second, third = keys(store, verifier, 3)
    app = make_middleware(caching=Caching(max_warm_entries=2))
    for headers in (first, second, first):
        assert await call(app, headers) == 200
    assert len(app.authenticator._warm) == 2
    assert await call(app, third) == 200  # the second, least recently used, goes

    def warm(headers: dict[str, str]) -> bool:
        memo = app.authenticator.header_memo(headers["Authorization"].encode())
        return memo in app.authenticator._warm

    assert [warm(first), warm(second), warm(third)] == [True, False, True]
    assert await call(app, second) == 200  # checked again, and warm again
    assert [warm(first), warm(second), warm(third)] == [False, True, True]


async def test_verified_markers_outlast_records_pushed_out_of_the_shared_cache(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier
) -> None:
    # A one-entry shared cache: every record pushes the previous one out. The markers of
    # verified secrets live apart, so checking the keys again costs lookups, not argon2.
    every = keys(store, verifier, 5)
    app = make_middleware(cache=TTLCache(max_entries=1))
    for headers in every:
        assert await call(app, headers) == 200
    verified = verifier.verify_calls
    app.authenticator.all_keys_changed()

    for headers in every:
        assert await call(app, headers) == 200
    assert verifier.verify_calls == verified


async def test_per_key_versions_stay_bounded_and_a_change_still_refuses_at_once(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier
) -> None:
    (headers,) = keys(store, verifier, 1)
    (key_id,) = store.keys
    app = make_middleware(caching=Caching(max_warm_entries=3))
    assert await call(app, headers) == 200
    for n in range(50):
        await app.key_changed(f"wfak_{n:020d}")
    assert len(app.authenticator._versions) <= 3

    store.update(key_id, enabled=False)
    await app.key_changed(key_id)
    assert await call(app, headers) == 401


async def test_credentials_checked_without_a_header_move_to_the_header_memo_when_one_comes(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = store.create_key(
        verifier, name="k", owner_email="ada@example.com", organization_name="Acme"
    )
    app = make_middleware()
    authenticator = app.authenticator
    credentials = KeyCredentials(record.key_id, secret)
    client = ("127.0.0.1", 5000)
    # As the verify endpoint checks a key for an organization: one entry, by credentials.
    await authenticator.check(credentials, client, organization_id="Acme")
    assert len(authenticator._warm) == 1
    # Another organization never gets the warm answer.
    with pytest.raises(AuthenticationRefused):
        await authenticator.check(credentials, client, organization_id="Globex")

    header = basic(record.key_id, secret)["Authorization"].encode()
    memo = authenticator.header_memo(header)
    lookups = store.lookups
    await authenticator.check(credentials, client, memo)
    assert list(authenticator._warm) == [memo]  # moved, not copied
    assert authenticator.warm(memo, client) is not None
    assert store.lookups == lookups  # found warm: no lookup
