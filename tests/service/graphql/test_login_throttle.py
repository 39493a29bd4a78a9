"""Login throttling: per (email, address) and per address, with a clock the test moves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from support.clock import MonotonicClock as Clock
from support.gql import LOGIN, PASSWORD, Api, only_error_code
from support.keys import CountingVerifier
from support.settings import cheap_settings
from wfa_auth import MemoryThrottleStore
from wfa_keys.graphql import GraphQLApp
from wfa_keys.graphql.context import Services
from wfa_keys.models import AuditAction, AuditEvent, Session, User
from wfa_keys.settings import Settings

EMAIL = "admin@acme.example"
WINDOW = 900
MakeClient = Callable[..., Api]
UserFactory = Callable[..., Awaitable[User]]


@pytest.fixture
def settings() -> Settings:
    return cheap_settings(
        login_max_failures_per_email_ip=3, login_max_failures_per_ip=5, login_window=WINDOW
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier() -> CountingVerifier:
    return CountingVerifier()


@pytest.fixture
def gql_app(settings: Settings, clock: Clock, verifier: CountingVerifier) -> GraphQLApp:
    services = Services.create(
        settings, hasher=verifier, throttle_store=MemoryThrottleStore(clock=clock)
    )
    return GraphQLApp(settings, services)


async def attempt(api: Api, email: str = EMAIL, password: str = PASSWORD) -> str | None:
    """Try to sign in; the error code, or None on success."""
    body = await api(LOGIN, email=email, password=password)
    return only_error_code(body) if "errors" in body else None


async def test_over_the_limit_even_the_right_password_is_refused_unchecked(
    make_client: MakeClient, make_user: UserFactory, verifier: CountingVerifier
) -> None:
    await make_user(EMAIL)
    api = make_client(client_ip="198.51.100.9")
    for _ in range(3):
        assert await attempt(api, password="guess") == "UNAUTHENTICATED"
    checks_before = verifier.verify_calls

    body = await api(LOGIN, email=EMAIL, password=PASSWORD)

    assert only_error_code(body) == "RATE_LIMITED"
    retry_after = body["errors"][0]["extensions"]["retryAfter"]
    assert isinstance(retry_after, int)
    assert retry_after == WINDOW
    assert verifier.verify_calls == checks_before
    assert await Session.all().count() == 0
    throttled = await AuditEvent.filter(action=AuditAction.LOGIN_THROTTLED)
    assert [(e.actor_email, e.client_ip) for e in throttled] == [(EMAIL, "198.51.100.9")]


async def test_retry_after_counts_down_with_the_window(
    make_client: MakeClient, make_user: UserFactory, clock: Clock
) -> None:
    await make_user(EMAIL)
    api = make_client()
    for _ in range(3):
        await attempt(api, password="guess")

    clock.now += 100
    body = await api(LOGIN, email=EMAIL, password=PASSWORD)

    assert body["errors"][0]["extensions"]["retryAfter"] == WINDOW - 100


async def test_right_password_works_again_once_the_window_has_passed(
    make_client: MakeClient, make_user: UserFactory, clock: Clock
) -> None:
    await make_user(EMAIL)
    api = make_client()
    for _ in range(3):
        await attempt(api, password="guess")
    assert await attempt(api) == "RATE_LIMITED"

    clock.now += WINDOW + 1

    assert await attempt(api) is None
    assert (await api("{ me { email } }"))["data"]["me"]["email"] == EMAIL


async def test_failures_from_another_address_never_lock_out_the_user(
    make_client: MakeClient, make_user: UserFactory
) -> None:
    await make_user(EMAIL)
    attacker = make_client(client_ip="203.0.113.66")
    for _ in range(4):
        await attempt(attacker, password="guess")
    assert await attempt(attacker) == "RATE_LIMITED"

    user = make_client(client_ip="192.0.2.10")

    assert await attempt(user) is None


async def test_spraying_many_accounts_from_one_address_is_limited(
    make_client: MakeClient, make_user: UserFactory
) -> None:
    await make_user(EMAIL)
    sprayer = make_client(client_ip="203.0.113.66")
    for n in range(5):
        assert await attempt(sprayer, email=f"user{n}@acme.example") == "UNAUTHENTICATED"

    assert await attempt(sprayer, email="fresh@acme.example") == "RATE_LIMITED"
    assert await attempt(sprayer) == "RATE_LIMITED"
    assert await attempt(make_client(client_ip="192.0.2.10")) is None


async def test_success_forgets_the_failures_of_that_email_and_address(
    make_client: MakeClient, make_user: UserFactory
) -> None:
    await make_user(EMAIL)
    api = make_client()
    for _ in range(2):
        await attempt(api, password="guess")
    assert await attempt(api) is None

    for _ in range(2):
        assert await attempt(api, password="guess") == "UNAUTHENTICATED"
    assert await attempt(api) is None
