"""Per-key rate limits and quotas: 429 with Retry-After, the IETF RateLimit headers, leases."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from support.clock import Clock
from support.keys import CountingStore, CountingVerifier, basic, client_for
from wfa_auth import (
    ApiKeyAuthMiddleware,
    MemoryCounterStore,
    MemoryKeyRecord,
    Metering,
    Quota,
    RateLimit,
    Taken,
)

Make = Callable[..., ApiKeyAuthMiddleware]


def limited(
    store: CountingStore,
    verifier: CountingVerifier,
    *,
    rate: RateLimit | None = None,
    quota: Quota | None = None,
) -> tuple[MemoryKeyRecord, str]:
    record, secret = store.create_key(
        verifier, name="CI", owner_email="ada@example.com", organization_name="Acme"
    )
    return store.update(record.key_id, rate_limit=rate, quota=quota), secret


def at(hour: int, minute: int = 0, second: float = 0) -> Clock:
    clock = Clock()
    clock.now = datetime(2026, 3, 14, hour, minute, tzinfo=UTC) + timedelta(seconds=second)
    return clock


class CountingCounters(MemoryCounterStore):
    """A memory counter store that counts its calls and can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.takes = 0
        self.failing = False

    async def take(self, bucket: str, slot: int, amount: int, *, limit: int, span: int) -> Taken:
        self.takes += 1
        if self.failing:
            raise ConnectionRefusedError("down")
        return await super().take(bucket, slot, amount, limit=limit, span=span)

    async def give_back(self, units: Mapping[tuple[str, int], int]) -> None:
        if self.failing:
            raise ConnectionRefusedError("down")
        await super().give_back(units)


async def test_a_key_over_its_rate_limit_is_refused_429_rate_limited_with_retry_after(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = limited(store, verifier, rate=RateLimit(requests=3, per_seconds=10))
    clock = at(12, 0, 0.5)
    async with client_for(make_middleware(clock=clock)) as client:
        answers = [
            await client.get("/whoami", headers=basic(record.key_id, secret)) for _ in range(4)
        ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[3]
    assert refused.json() == {
        "error": "rate_limited",
        "message": "This API key made too many calls; wait before calling again.",
    }
    # The three calls sit in the slot of 12:00:00-12:00:01 (a tenth of the window), counted
    # whole until that slot has left the window, at 12:00:11: 10.5 s later, rounded up.
    assert refused.headers["retry-after"] == "11"
    assert refused.headers["ratelimit-policy"] == '"rate";q=3;w=10'
    assert refused.headers["ratelimit"] == '"rate";r=0;t=11'
    assert answers[0].headers["ratelimit-policy"] == '"rate";q=3;w=10'
    assert answers[0].headers["ratelimit"] == '"rate";r=2;t=11'
    assert answers[2].headers["ratelimit"] == '"rate";r=0;t=11'


async def test_a_rate_limit_lets_calls_through_again_once_the_window_has_passed(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = limited(store, verifier, rate=RateLimit(requests=2, per_seconds=10))
    clock = at(12)
    async with client_for(make_middleware(clock=clock)) as client:
        codes = [
            (await client.get("/whoami", headers=basic(record.key_id, secret))).status_code
            for _ in range(3)
        ]
        clock.advance(9)
        still = await client.get("/whoami", headers=basic(record.key_id, secret))
        clock.advance(2.5)
        again = await client.get("/whoami", headers=basic(record.key_id, secret))
    assert codes == [200, 200, 429]
    assert still.status_code == 429
    assert again.status_code == 200


async def test_a_key_past_its_daily_quota_is_refused_until_the_utc_day_ends(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = limited(store, verifier, quota=Quota(requests=2, period="day"))
    clock = at(23, 59, 30)
    async with client_for(make_middleware(clock=clock)) as client:
        answers = [
            await client.get("/whoami", headers=basic(record.key_id, secret)) for _ in range(3)
        ]
        clock.advance(31)
        next_day = await client.get("/whoami", headers=basic(record.key_id, secret))
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["error"] == "quota_exceeded"
    assert answers[2].headers["retry-after"] == "30"
    assert answers[0].headers["ratelimit-policy"] == '"quota";q=2;w=86400'
    assert answers[0].headers["ratelimit"] == '"quota";r=1;t=30'
    assert next_day.status_code == 200


async def test_a_monthly_quota_resets_when_the_utc_month_ends(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = limited(store, verifier, quota=Quota(requests=1, period="month"))
    clock = at(12)
    async with client_for(make_middleware(clock=clock)) as client:
        first = await client.get("/whoami", headers=basic(record.key_id, secret))
        second = await client.get("/whoami", headers=basic(record.key_id, secret))
    assert first.status_code == 200
    assert first.headers["ratelimit-policy"] == f'"quota";q=1;w={31 * 86400}'
    end_of_march = datetime(2026, 4, 1, tzinfo=UTC)
    assert second.headers["retry-after"] == str(int((end_of_march - clock.now).total_seconds()))


async def test_both_policies_are_announced_tightest_first(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = limited(
        store,
        verifier,
        rate=RateLimit(requests=100, per_seconds=60),
        quota=Quota(requests=5, period="day"),
    )
    async with client_for(make_middleware(clock=at(0))) as client:
        response = await client.get("/whoami", headers=basic(record.key_id, secret))
    assert response.headers["ratelimit-policy"] == '"quota";q=5;w=86400, "rate";q=100;w=60'
    assert response.headers["ratelimit"].startswith('"quota";r=4;t=86400, "rate";r=99;')


async def test_a_changed_limit_is_announced_from_the_next_call_in_the_same_window(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = limited(
        store,
        verifier,
        rate=RateLimit(requests=100, per_seconds=60),
        quota=Quota(requests=5, period="day"),
    )
    app = make_middleware(clock=at(0))
    async with client_for(app) as client:
        await client.get("/whoami", headers=basic(record.key_id, secret))
        store.update(record.key_id, rate_limit=RateLimit(requests=3, per_seconds=60))
        await app.key_changed(record.key_id)
        response = await client.get("/whoami", headers=basic(record.key_id, secret))
    assert response.headers["ratelimit-policy"] == '"rate";q=3;w=60, "quota";q=5;w=86400'
    # Units leased under the old limit are still spent: 5 leased, 2 used.
    assert response.headers["ratelimit"] == '"rate";r=1;t=66, "quota";r=3;t=86400'


async def test_a_key_without_limits_gets_no_rate_limit_headers(
    make_middleware: Make, key: tuple[MemoryKeyRecord, str]
) -> None:
    record, secret = key
    async with client_for(make_middleware()) as client:
        response = await client.get("/whoami", headers=basic(record.key_id, secret))
    assert response.status_code == 200
    assert "ratelimit" not in response.headers
    assert "ratelimit-policy" not in response.headers


async def test_warm_calls_spend_a_local_lease_without_asking_the_store_each_time(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = limited(store, verifier, rate=RateLimit(requests=1000, per_seconds=60))
    counters = CountingCounters()
    app = make_middleware(clock=at(12), metering=Metering(counters=counters))
    async with client_for(app) as client:
        for _ in range(40):
            assert (await client.get("/whoami", headers=basic(record.key_id, secret))).is_success
    # A lease is 50 units: one take for 40 calls (no background top-up without a lifespan).
    assert counters.takes == 1


async def test_a_failing_counter_store_refuses_a_limited_key_503_and_never_lets_it_through(
    make_middleware: Make,
    store: CountingStore,
    verifier: CountingVerifier,
    key: tuple[MemoryKeyRecord, str],
) -> None:
    record, secret = limited(store, verifier, rate=RateLimit(requests=1, per_seconds=10))
    unlimited, unlimited_secret = key
    counters = CountingCounters()
    counters.failing = True
    app = make_middleware(clock=at(12), metering=Metering(counters=counters))
    async with client_for(app) as client:
        refused = await client.get("/whoami", headers=basic(record.key_id, secret))
        other = await client.get("/whoami", headers=basic(unlimited.key_id, unlimited_secret))
    assert refused.status_code == 503
    assert refused.json()["error"] == "service_unavailable"
    assert refused.headers["retry-after"] == "5"
    assert other.status_code == 200


async def test_two_processes_sharing_a_store_accept_no_more_than_the_limit(
    store: CountingStore, verifier: CountingVerifier
) -> None:
    """100 calls per 10 s, 1,000 calls alternating between two middlewares (processes)."""
    record, secret = limited(store, verifier, rate=RateLimit(requests=100, per_seconds=10))
    shared = MemoryCounterStore()
    clock = at(12)
    apps = [
        _app(store, verifier, clock, Metering(counters=shared)),
        _app(store, verifier, clock, Metering(counters=shared)),
    ]
    accepted = 0
    async with client_for(apps[0]) as one, client_for(apps[1]) as two:
        for i in range(1000):
            clock.advance(0.005)  # 1,000 calls in 5 s: all inside one window
            client = one if i % 2 else two
            response = await client.get("/whoami", headers=basic(record.key_id, secret))
            accepted += response.status_code == 200
    assert 90 <= accepted <= 100


async def test_units_left_when_a_slot_ends_are_given_back_before_the_next_slots_are_taken() -> None:
    """Two processes alternate calls across the end of a slot, each holding part of a lease
    when it ends; with no periodic give-back at all, every unit of the limit is still
    accepted, because each process gives its stale units back before it takes new ones."""
    from wfa_auth._errors import Refusal
    from wfa_auth._limits import Limiter
    from wfa_auth._policies import limits_of

    clock = at(12, 0, 0.952)  # 24 calls 2 ms apart, then slot 12:00:01-12:00:02 begins
    record = _record("wfak_slots", RateLimit(requests=100, per_seconds=10))  # leases of 5
    limits = limits_of(record)
    assert limits is not None
    shared = MemoryCounterStore()
    limiters = [Limiter(shared, clock=lambda: clock().timestamp()) for _ in range(2)]
    accepted = refused = 0
    for i in range(1000):
        limiter = limiters[i % 2]
        answer = limiter.admit(limits) or await limiter.acquire(limits)
        accepted += isinstance(answer, list)
        refused += isinstance(answer, Refusal)
        clock.advance(0.002)
    # At the slot's end each had taken 15 units and spent 12.
    assert (accepted, refused) == (100, 900)


async def test_a_top_up_started_in_a_slot_that_ended_leaves_the_next_slots_lease_alone() -> None:
    """A background top-up that only runs once a request has taken a lease of the next slot
    neither replaces that lease nor takes units of the slot that ended."""
    import anyio.lowlevel

    from wfa_auth._limits import Limiter
    from wfa_auth._policies import limits_of

    clock = at(12, 0, 0.5)
    record = _record("wfak_late", RateLimit(requests=100, per_seconds=10))  # leases of 5
    limits = limits_of(record)
    assert limits is not None
    bucket = limits.policies[0].bucket
    shared = MemoryCounterStore()
    limiter = Limiter(shared, clock=lambda: clock().timestamp())
    async with limiter.run():
        assert isinstance(await limiter.acquire(limits), list)
        for _ in range(3):  # 1 left of 5: a top-up is started, and has not run yet
            assert isinstance(limiter.admit(limits), list)
        clock.advance(0.5)  # the next slot
        assert isinstance(await limiter.acquire(limits), list)
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        lease = limiter._leases[bucket]
        assert (lease.slot, lease.allowance) == (
            limits.policies[0].slot_at(clock().timestamp())[0],
            4,
        )
        # The slot that ended: its 4 spent units, the one left given back, none taken late.
        assert await shared.count(bucket, lease.slot - 1) == 4


def _app(store: Any, verifier: Any, clock: Clock, metering: Metering) -> ApiKeyAuthMiddleware:
    from support.keys import inner_app

    return ApiKeyAuthMiddleware(
        inner_app(),
        store=store,
        verifier=verifier,
        clock=clock,
        timer=lambda: clock().timestamp(),
        metering=metering,
    )


@pytest.mark.parametrize("period", ["week", ""])
def test_a_quota_period_other_than_day_or_month_is_refused(period: str) -> None:
    from wfa_auth._policies import quota_policy

    with pytest.raises(ValueError, match="day or month"):
        quota_policy("wfak_x", Quota(requests=1, period=period))


def _record(key_id: str, rate: RateLimit, quota: Quota | None = None) -> MemoryKeyRecord:
    """A key record with a rate limit (and a quota), for the Limiter alone."""
    return MemoryKeyRecord(
        key_id=key_id,
        name="CI",
        secret_hash="unused",
        owner_id="ada",
        owner_email="ada@example.com",
        organization_id="org",
        organization_name="Acme",
        rate_limit=rate,
        quota=quota,
    )


# Back in time, the day's quota of 30 is not renewed: 25 calls.
@pytest.mark.parametrize(("step", "calls"), [(0.37, 44), (-0.37, 25)])
async def test_the_headers_of_admitted_calls_are_those_header_values_gives_at_each_moment(
    step: float, calls: int
) -> None:
    """The warm path formats its headers from bytes built once per slot, and its reset
    times once a second: the same as formatting every state afresh, the order of the two
    policies included, and when the wall clock steps back too."""
    from wfa_auth._limits import Limiter
    from wfa_auth._policies import header_values, limits_of

    clock = at(23, 59, 50)

    def now() -> float:
        return clock().timestamp()

    limits = limits_of(
        _record(
            "wfak_headers", RateLimit(requests=40, per_seconds=10), Quota(requests=30, period="day")
        )
    )
    assert limits is not None
    limiter = Limiter(MemoryCounterStore(), clock=now)
    orders = set()
    for _ in range(calls):
        clock.advance(step)  # across rate slots, and the end of the UTC day going forward
        admitted = limiter.admit(limits) or await limiter.acquire(limits)
        assert isinstance(admitted, list)
        states = [
            limiter._state(p, lease, now(), lease.limit_left(p))
            for p in limits.policies
            for lease in [limiter._leases[p.bucket]]
        ]
        policy, state = header_values(states)
        assert dict(admitted) == {
            b"ratelimit-policy": policy.encode(),
            b"ratelimit": state.encode(),
        }
        orders.add(policy.split(";")[0])
    if step > 0:
        assert orders == {'"rate"', '"quota"'}  # each was the tightest at some point


async def test_a_window_that_frees_sooner_after_a_top_up_is_announced_from_that_call() -> None:
    """When another process gives back its units of the window's oldest slot, the next
    lease taken in the same slot frees sooner, and the reset time says so at once (the
    warm path reuses the reset times it formatted only while they hold)."""
    from wfa_auth._limits import Limiter
    from wfa_auth._policies import limits_of

    clock = at(12, 0, 0.5)

    def now() -> float:
        return clock().timestamp()

    # Slots of 1 s, leases of 2.
    rate_limit = RateLimit(requests=40, per_seconds=10)
    limits = limits_of(_record("wfak_frees", rate_limit, Quota(requests=1000, period="day")))
    assert limits is not None
    rate = limits.policies[0]
    store = MemoryCounterStore()
    # Another process leases 2 units of the current slot.
    slot = rate.slot_at(now())[0]
    await store.take(rate.bucket, slot, 2, limit=rate.limit, span=rate.span)
    clock.advance(1)  # the next slot: the window's oldest counted slot is the other one's
    limiter = Limiter(store, clock=now)
    first = await limiter.acquire(limits)
    second = limiter.admit(limits)
    assert isinstance(first, list)
    assert isinstance(second, list)
    assert dict(first)[b"ratelimit"] == b'"rate";r=37;t=10, "quota";r=999;t=43199'
    assert dict(second)[b"ratelimit"] == b'"rate";r=36;t=10, "quota";r=998;t=43199'
    await store.give_back({(rate.bucket, slot): 2})  # it had spent none of them
    assert limiter.admit(limits) is None  # the lease of 2 is spent
    third = await limiter.acquire(limits)
    assert isinstance(third, list)
    assert dict(third)[b"ratelimit"] == b'"rate";r=37;t=11, "quota";r=997;t=43199'


async def test_calls_spent_without_a_pause_start_one_top_up_not_one_each() -> None:
    """A burst that never yields to the event loop spends past half its lease many times
    before the background top-up can run: one top-up is started, not one a call."""
    import anyio.lowlevel

    from wfa_auth._limits import Limiter
    from wfa_auth._policies import limits_of

    clock = at(12)
    record = _record("wfak_burst", RateLimit(requests=1000, per_seconds=60))  # leases of 50
    limits = limits_of(record)
    assert limits is not None
    counters = CountingCounters()
    limiter = Limiter(counters, clock=lambda: clock().timestamp())
    async with limiter.run():
        assert isinstance(await limiter.acquire(limits), list)
        for _ in range(40):  # 41 spent of 50: below half for the last 16
            assert isinstance(limiter.admit(limits), list)
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        assert counters.takes == 2
        assert limiter._leases[limits.policies[0].bucket].allowance == 59  # 9 + 50


async def test_the_rate_limit_headers_are_added_to_a_copy_of_the_apps_start_message() -> None:
    """The app's message and its header list are left as the app made them (it may send
    the same ones again), whether its headers are a list or another iterable."""
    from wfa_auth._middleware import _with_headers

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    added = [(b"ratelimit-policy", b'"rate";q=5;w=60'), (b"ratelimit", b'"rate";r=4;t=60')]
    app_headers = [(b"content-type", b"text/plain")]
    start = {"type": "http.response.start", "status": 200, "headers": app_headers}
    body = {"type": "http.response.body", "body": b"ok"}
    accept = {"type": "websocket.accept", "headers": ((b"x-a", b"1"),)}
    wrapped = _with_headers(send, added)
    for message in (start, body, accept):
        await wrapped(message)
    assert app_headers == [(b"content-type", b"text/plain")]
    assert start["headers"] is app_headers
    assert sent[0] == {**start, "headers": [*app_headers, *added]}
    assert sent[1] is body
    assert sent[2] == {"type": "websocket.accept", "headers": [(b"x-a", b"1"), *added]}
    assert accept["headers"] == ((b"x-a", b"1"),)
