"""Throttling through a ThrottleStore: capped even under concurrency, per key and per IP, cheap."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from support.clock import MonotonicClock
from support.keys import CountingStore, CountingVerifier, basic, bearer, client_for, inner_app
from wfa_auth import (
    ApiKeyAuthMiddleware,
    MemoryKeyRecord,
    MemoryThrottleStore,
    Throttling,
    Tokens,
    generate_key_id,
    generate_key_secret,
)

Make = Callable[..., ApiKeyAuthMiddleware]
Key = tuple[MemoryKeyRecord, str]


class CountingThrottleStore(MemoryThrottleStore):
    """A memory throttle store that records every call, or fails each one."""

    def __init__(self, clock: Callable[[], float] | None = None, fail: bool = False) -> None:
        if clock is None:
            super().__init__()
        else:
            super().__init__(clock=clock)
        self.calls: list[tuple[str, str, str]] = []
        self.fail = fail

    def _called(self, name: str, bucket: str, member: str = "") -> None:
        self.calls.append((name, bucket, member))
        if self.fail:
            raise ConnectionRefusedError(111, "redis down")

    async def reserve(self, bucket: str, member: str, *, limit: int, window: float) -> float | None:
        self._called("reserve", bucket, member)
        return await super().reserve(bucket, member, limit=limit, window=window)

    async def release(self, bucket: str, member: str) -> None:
        self._called("release", bucket, member)
        await super().release(bucket, member)

    async def clear(self, bucket: str) -> None:
        self._called("clear", bucket)
        await super().clear(bucket)


async def whoami(app: Any, headers: dict[str, str], ip: str = "10.0.0.1") -> Any:
    async with client_for(app, ip) as client:
        return await client.get("/whoami", headers=headers)


def wrong(key_id: str) -> dict[str, str]:
    return basic(key_id, generate_key_secret())


async def test_repeated_wrong_secrets_are_throttled_with_retry_after(
    make_middleware: Make, key: Key, verifier: CountingVerifier
) -> None:
    record, _ = key
    app = make_middleware(throttling=Throttling(max_failures_per_key_and_ip=3, window=60))
    statuses = [(await whoami(app, wrong(record.key_id))).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    throttled = await whoami(app, wrong(record.key_id))
    assert throttled.json()["error"] == "too_many_attempts"
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    assert verifier.verify_calls == 3  # throttled attempts cost no argon2


async def test_concurrent_wrong_secrets_are_capped_at_the_limit(
    make_middleware: Make, key: Key, verifier: CountingVerifier
) -> None:
    record, _ = key
    app = make_middleware(throttling=Throttling(max_failures_per_key_and_ip=10))
    responses = await asyncio.gather(*(whoami(app, wrong(record.key_id)) for _ in range(100)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [401] * 10 + [429] * 90
    assert verifier.verify_calls == 10


async def test_failures_with_one_key_never_throttle_another_key_from_the_same_ip(
    make_middleware: Make, key: Key, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = key
    other, other_secret = store.create_key(
        verifier, name="other", owner_email="bob@example.com", organization_name="Acme"
    )
    app = make_middleware(
        throttling=Throttling(max_failures_per_key_and_ip=3, max_failing_keys_per_ip=2)
    )
    for _ in range(20):
        await whoami(app, wrong(other.key_id))
    assert (await whoami(app, wrong(other.key_id))).status_code == 429
    # Same IP (a shared NAT address), another key: neither its right nor a wrong secret is 429.
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200
    assert (await whoami(app, wrong(record.key_id))).status_code == 401
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200
    # The right secret of the throttled key from another address still works.
    assert (await whoami(app, basic(other.key_id, other_secret), ip="10.9.9.9")).status_code == 200


async def test_spraying_distinct_key_ids_from_one_ip_is_throttled(
    make_middleware: Make, key: Key, verifier: CountingVerifier
) -> None:
    record, secret = key
    app = make_middleware(throttling=Throttling(max_failing_keys_per_ip=3))
    statuses = [(await whoami(app, wrong(generate_key_id()))).status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    assert verifier.verify_calls == 3
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 429
    assert (await whoami(app, basic(record.key_id, secret), ip="10.0.0.2")).status_code == 200


async def test_a_success_clears_the_keys_failures_and_frees_its_place_on_the_ip(
    make_middleware: Make, key: Key
) -> None:
    record, secret = key
    app = make_middleware(
        throttling=Throttling(max_failures_per_key_and_ip=3, max_failing_keys_per_ip=1)
    )
    for _ in range(2):
        assert (await whoami(app, wrong(record.key_id))).status_code == 401
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200
    statuses = [(await whoami(app, wrong(record.key_id))).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    # The key's place on the IP is taken by its failures; another key has none left...
    assert (await whoami(app, wrong(generate_key_id()))).status_code == 429


async def test_throttled_requests_touch_neither_the_hash_nor_the_store(
    make_middleware: Make, key: Key, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, _ = key
    throttle_store = CountingThrottleStore()
    app = make_middleware(
        throttling=Throttling(store=throttle_store, max_failures_per_key_and_ip=2)
    )
    statuses = [(await whoami(app, wrong(record.key_id))).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    calls, lookups, verifications = len(throttle_store.calls), store.lookups, verifier.verify_calls
    responses = await asyncio.gather(*(whoami(app, wrong(record.key_id)) for _ in range(50)))
    assert {r.status_code for r in responses} == {429}
    assert all(1 <= int(r.headers["retry-after"]) <= 300 for r in responses)
    assert (len(throttle_store.calls), store.lookups, verifier.verify_calls) == (
        calls,
        lookups,
        verifications,
    )


def wrong_checksum(key_id: str) -> tuple[str, str]:
    secret = generate_key_secret()
    return key_id, secret[:-1] + ("A" if secret[-1] != "A" else "B")


def huge_key_id(key_id: str) -> tuple[str, str]:
    return "wfak_" + "x" * 60_000, generate_key_secret()


def lone_surrogates(key_id: str) -> tuple[str, str]:
    return "wfak_\ud800", "wfas_\udfff"


@pytest.mark.parametrize(
    ("credentials", "refusal"),
    [
        (wrong_checksum, (401, "invalid_credentials")),
        (huge_key_id, (401, "invalid_credentials")),
        # No text can hold them: the body is a bad request (docs/limits.md).
        (lone_surrogates, (400, "invalid_request")),
    ],
)
async def test_malformed_credentials_touch_no_store_and_no_hash(
    make_middleware: Make,
    key: Key,
    store: CountingStore,
    verifier: CountingVerifier,
    credentials: Callable[[str], tuple[str, str]],
    refusal: tuple[int, str],
) -> None:
    record, _ = key
    throttle_store = CountingThrottleStore()
    app = make_middleware(
        throttling=Throttling(store=throttle_store),
        tokens=Tokens(max_request_bytes=100_000),
    )
    key_id, secret = credentials(record.key_id)
    async with client_for(app) as client:
        # json.dumps escapes lone surrogates (\\ud800), as a client may send them.
        body = json.dumps({"key_id": key_id, "key_secret": secret})
        response = await client.post("/v1/auth/api-key/token", content=body)
    assert (response.status_code, response.json()["error"]) == refusal
    assert (throttle_store.calls, store.lookups, verifier.verify_calls) == ([], 0, 0)


async def test_buckets_and_members_are_short_digests_never_the_input(
    make_middleware: Make, key: Key
) -> None:
    record, secret = key
    throttle_store = CountingThrottleStore()
    app = make_middleware(throttling=Throttling(store=throttle_store))
    await whoami(app, wrong(record.key_id), ip="203.0.113.77")
    await whoami(app, basic(record.key_id, secret), ip="203.0.113.77")
    await whoami(app, bearer("unknown-token"), ip="203.0.113.77")
    assert {name for name, _, _ in throttle_store.calls} == {"reserve", "release", "clear"}
    for _, bucket, member in throttle_store.calls:
        assert len(bucket) <= 64
        assert len(member) <= 64
        for raw in (record.key_id, "203.0.113.77", secret, "unknown-token"):
            assert raw not in bucket + member


async def test_a_failing_throttle_store_fails_closed_with_503(
    make_middleware: Make, key: Key, verifier: CountingVerifier
) -> None:
    record, secret = key
    throttle_store = CountingThrottleStore(fail=True)
    app = make_middleware(throttling=Throttling(store=throttle_store, retry_after_unavailable=7))
    for headers in (basic(record.key_id, secret), bearer("unknown-token")):
        response = await whoami(app, headers)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "7"
        assert response.json()["error"] == "service_unavailable"
        assert "redis down" not in response.text
    assert verifier.verify_calls == 0  # never checked unthrottled


async def test_throttles_are_shared_by_every_process_using_the_store(
    key: Key, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = key
    shared = Throttling(store=MemoryThrottleStore(), max_failures_per_key_and_ip=3)
    first, second = (
        ApiKeyAuthMiddleware(
            inner_app(),
            store=store,
            verifier=verifier,
            throttling=shared,
        )
        for _ in range(2)
    )
    assert (await whoami(first, wrong(record.key_id))).status_code == 401
    assert (await whoami(second, wrong(record.key_id))).status_code == 401
    assert (await whoami(first, wrong(record.key_id))).status_code == 401
    assert (await whoami(second, basic(record.key_id, secret))).status_code == 429


async def test_a_throttled_client_may_try_again_once_the_window_has_passed(
    make_middleware: Make, key: Key
) -> None:
    record, secret = key
    timer = MonotonicClock()
    app = make_middleware(
        timer=timer,
        throttling=Throttling(
            store=MemoryThrottleStore(clock=timer), max_failures_per_key_and_ip=2, window=60
        ),
    )
    for _ in range(2):
        await whoami(app, wrong(record.key_id))
    refused = await whoami(app, basic(record.key_id, secret))
    assert (refused.status_code, refused.headers["retry-after"]) == (429, "60")
    timer.advance(59)
    assert (await whoami(app, basic(record.key_id, secret))).headers["retry-after"] == "1"
    timer.advance(1)
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200


async def test_a_store_failure_during_the_check_is_not_counted_as_a_failure(
    make_middleware: Make, key: Key, store: CountingStore
) -> None:
    record, secret = key

    class FlakyStore(CountingStore):
        down = True

        async def get_key(self, key_id: str) -> MemoryKeyRecord | None:
            if self.down:
                raise OSError("db down")
            return await super().get_key(key_id)

    flaky = FlakyStore()
    flaky.add(record)
    app = make_middleware(store=flaky, throttling=Throttling(max_failures_per_key_and_ip=2))
    statuses = [(await whoami(app, basic(record.key_id, secret))).status_code for _ in range(4)]
    assert statuses == [503] * 4
    flaky.down = False
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200


async def test_unknown_bearer_tokens_count_as_distinct_failing_credentials_per_ip(
    make_middleware: Make,
) -> None:
    app = make_middleware(throttling=Throttling(max_failing_keys_per_ip=2))
    statuses = [(await whoami(app, bearer(f"nope{i}"))).status_code for i in range(3)]
    assert statuses == [401, 401, 429]
    assert (await whoami(app, bearer("nope3"), ip="10.0.0.2")).status_code == 401


async def test_a_secret_verified_before_is_checked_again_without_the_throttle_store(
    make_middleware: Make, key: Key, verifier: CountingVerifier
) -> None:
    record, secret = key
    throttle_store = CountingThrottleStore()
    app = make_middleware(throttling=Throttling(store=throttle_store))
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200
    calls = len(throttle_store.calls)
    await app.key_changed(record.key_id)  # the record is looked up again
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200
    assert (len(throttle_store.calls), verifier.verify_calls) == (calls, 1)


async def test_concurrent_first_checks_from_one_ip_never_leave_it_throttled(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier
) -> None:
    keys = [
        store.create_key(verifier, name=f"k{i}", owner_email="a@b.c", organization_name="Acme")
        for i in range(3)
    ]
    app = make_middleware(throttling=Throttling(max_failing_keys_per_ip=2))
    responses = await asyncio.gather(*(whoami(app, basic(r.key_id, s)) for r, s in keys))
    # Two checks ran; the third found the address's places taken by checks still running.
    assert sorted(r.status_code for r in responses) == [200, 200, 429]
    busy = next(r for r in responses if r.status_code == 429)
    assert busy.headers["retry-after"] == "1"
    # Those checks succeeded and freed their places: nothing keeps the address throttled.
    for record, secret in keys:
        assert (await whoami(app, basic(record.key_id, secret))).status_code == 200


async def test_a_failing_key_holds_its_place_on_the_ip_for_the_whole_window(
    make_middleware: Make, key: Key
) -> None:
    record, secret = key
    timer = MonotonicClock()
    app = make_middleware(
        timer=timer,
        throttling=Throttling(
            store=MemoryThrottleStore(clock=timer), max_failing_keys_per_ip=1, window=300
        ),
    )
    assert (await whoami(app, wrong(generate_key_id()))).status_code == 401
    timer.advance(100)
    refused = await whoami(app, basic(record.key_id, secret))
    assert (refused.status_code, refused.headers["retry-after"]) == (429, "200")
    timer.advance(200)
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200


async def spray(app: Any, count: int, ip: str = "10.0.0.1") -> list[int]:
    """Others at ``ip`` trying ``count`` made-up Key IDs."""
    return [(await whoami(app, wrong(generate_key_id()), ip=ip)).status_code for _ in range(count)]


async def test_a_key_that_succeeded_from_an_ip_is_not_refused_there_for_others_failures(
    make_middleware: Make, key: Key
) -> None:
    record, secret = key
    shared = MemoryThrottleStore()
    throttling = Throttling(store=shared, max_failures_per_key_and_ip=3, max_failing_keys_per_ip=3)
    # Two processes sharing the throttle store: the key worked on one, the flood hits the other.
    first, second = make_middleware(throttling=throttling), make_middleware(throttling=throttling)
    assert (await whoami(first, basic(record.key_id, secret))).status_code == 200

    assert await spray(second, 6) == [401, 401, 401, 429, 429, 429]

    # Cold on the second process, behind the same address: still let through.
    assert (await whoami(second, basic(record.key_id, secret))).status_code == 200
    # Another key that never worked from there is refused, as before.
    assert (await whoami(second, wrong(generate_key_id()))).status_code == 429


async def test_a_known_good_key_is_still_limited_per_key_and_ip(
    make_middleware: Make, key: Key, verifier: CountingVerifier
) -> None:
    record, secret = key
    app = make_middleware(
        throttling=Throttling(max_failures_per_key_and_ip=3, max_failing_keys_per_ip=3)
    )
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200
    await spray(app, 5)
    checks = verifier.verify_calls

    statuses = [(await whoami(app, wrong(record.key_id))).status_code for _ in range(5)]

    # Guessing its secret from the address gets no more tries than any key's.
    assert statuses == [401, 401, 401, 429, 429]
    assert verifier.verify_calls - checks == 3


async def test_known_good_markers_expire_with_the_window(make_middleware: Make, key: Key) -> None:
    record, secret = key
    clock = MonotonicClock()
    throttling = Throttling(
        store=MemoryThrottleStore(clock=clock), max_failing_keys_per_ip=3, window=60
    )
    worked = make_middleware(throttling=throttling, timer=clock)
    assert (await whoami(worked, basic(record.key_id, secret))).status_code == 200
    clock.advance(61)
    flooded = make_middleware(throttling=throttling, timer=clock)

    await spray(flooded, 5)

    assert (await whoami(flooded, basic(record.key_id, secret))).status_code == 429


async def test_a_valid_token_is_not_refused_for_others_failures_from_its_ip(
    make_middleware: Make, key: Key
) -> None:
    record, secret = key
    app = make_middleware(throttling=Throttling(max_failing_keys_per_ip=2))
    async with client_for(app, "10.0.0.7") as client:
        exchange = await client.post(
            "/v1/auth/api-key/token", json={"key_id": record.key_id, "key_secret": secret}
        )
    token = exchange.json()["access_token"]
    statuses = [
        (await whoami(app, bearer(f"nope{i}"), ip="10.0.0.7")).status_code for i in range(4)
    ]
    assert statuses == [401, 401, 429, 429]

    assert (await whoami(app, bearer(token), ip="10.0.0.7")).status_code == 200
