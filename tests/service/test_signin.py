"""Sign-in through the service layer: the shared throttle store, its audit, bad input.

The GraphQL app is built with a counting verifier and a throttle store the test holds (a
clock it moves, or a store that fails), as ``create_graphql_app(throttle_store=...)`` is.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from tortoise.context import TortoiseContext

from support.clock import MonotonicClock
from support.gql import LOGIN, PASSWORD, Api, only_error_code
from support.keys import CountingVerifier
from wfa_auth import MemoryThrottleStore
from wfa_keys.graphql import GraphQLApp
from wfa_keys.graphql.context import Services
from wfa_keys.models import AuditAction, AuditEvent, Session, User
from wfa_keys.settings import Settings

EMAIL = "admin@acme.example"
WINDOW = 900
MakeClient = Callable[..., Api]
UserFactory = Callable[..., Awaitable[User]]
EVENTS = "{ auditEvents { nodes { action actorEmail clientIp count } } }"


class RecordingStore(MemoryThrottleStore):
    """A memory store that records every bucket and member it was given, or fails."""

    def __init__(self, clock: MonotonicClock) -> None:
        super().__init__(clock=clock)
        self.names: set[str] = set()
        self.failing = False

    async def reserve(self, bucket: str, member: str, *, limit: int, window: float) -> float | None:
        if self.failing:
            raise ConnectionRefusedError("throttle store is down")
        self.names.update((bucket, member))
        return await super().reserve(bucket, member, limit=limit, window=window)


@pytest.fixture
def settings() -> Settings:
    return Settings(
        login_max_failures_per_email_ip=3, login_max_failures_per_ip=50, login_window=WINDOW
    )


@pytest.fixture
def clock() -> MonotonicClock:
    return MonotonicClock()


@pytest.fixture
def verifier() -> CountingVerifier:
    return CountingVerifier()


@pytest.fixture
def store(clock: MonotonicClock) -> RecordingStore:
    return RecordingStore(clock)


@pytest.fixture
def gql_app(settings: Settings, verifier: CountingVerifier, store: RecordingStore) -> GraphQLApp:
    return GraphQLApp(settings, Services.create(settings, hasher=verifier, throttle_store=store))


async def attempt(api: Api, email: str = EMAIL, password: str = PASSWORD) -> str | None:
    body = await api(LOGIN, email=email, password=password)
    return only_error_code(body) if "errors" in body else None


async def test_concurrent_sign_ins_from_one_address_check_at_most_the_limit_of_passwords(
    make_client: MakeClient, make_user: UserFactory, verifier: CountingVerifier
) -> None:
    await make_user(EMAIL)
    api = make_client(client_ip="203.0.113.66")
    checks_before = verifier.verify_calls

    codes = await asyncio.gather(
        *(attempt(api, email=f"user{n}@acme.example", password="guess") for n in range(150))
    )

    assert verifier.verify_calls - checks_before <= 50
    assert codes.count("UNAUTHENTICATED") == 50
    assert codes.count("RATE_LIMITED") == 100
    assert await AuditEvent.filter(action=AuditAction.LOGIN_FAILED).count() == 50


async def test_a_throttled_sign_in_is_audited_once_per_window_with_a_count(
    make_client: MakeClient, make_user: UserFactory, clock: MonotonicClock
) -> None:
    await make_user(EMAIL)
    await make_user("auditor@acme.example")
    attacker = make_client(client_ip="198.51.100.9")
    for _ in range(3):
        assert await attempt(attacker, password="guess") == "UNAUTHENTICATED"
    for _ in range(5):
        assert await attempt(attacker, password="guess") == "RATE_LIMITED"

    [event] = await AuditEvent.filter(action=AuditAction.LOGIN_THROTTLED)
    assert (event.actor_email, event.client_ip, (event.detail or {})["count"]) == (
        EMAIL,
        "198.51.100.9",
        5,
    )
    assert EMAIL not in json.dumps(event.detail)

    # Another window: a new event for the same pair.
    clock.advance(WINDOW + 1)
    await AuditEvent.filter(id=event.id).update(
        created_at=datetime.now(UTC) - timedelta(seconds=WINDOW + 1)
    )
    for _ in range(3):
        await attempt(attacker, password="guess")
    assert await attempt(attacker, password="guess") == "RATE_LIMITED"
    counts = await AuditEvent.filter(action=AuditAction.LOGIN_THROTTLED).order_by("id")
    assert [(e.detail or {})["count"] for e in counts] == [5, 1]

    auditor = make_client(client_ip="192.0.2.1")
    assert await attempt(auditor, email="auditor@acme.example") is None
    nodes = (await auditor.connection(EVENTS, "auditEvents"))["nodes"]
    throttled = [n["count"] for n in nodes if n["action"] == "LOGIN_THROTTLED"]
    assert throttled == [1, 5]
    assert {n["count"] for n in nodes if n["action"] != "LOGIN_THROTTLED"} == {None}


async def test_concurrent_throttled_sign_ins_on_two_servers_share_one_event_and_count(
    db: TortoiseContext,
    settings: Settings,
    make_user: UserFactory,
    store: RecordingStore,
    verifier: CountingVerifier,
) -> None:
    await make_user(EMAIL)
    # Two apps, as two server processes, sharing the throttle store and the database.
    servers = [
        Starlette(
            routes=[
                Route(
                    "/graphql",
                    GraphQLApp(
                        settings,
                        Services.create(settings, hasher=verifier, throttle_store=store),
                    ),
                    methods=["POST"],
                )
            ]
        )
        for _ in range(2)
    ]
    clients = [
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=server, client=("198.51.100.9", 5000)),
            base_url="http://testserver",
        )
        for server in servers
    ]
    try:
        apis = [Api(client) for client in clients]
        for _ in range(3):
            await attempt(apis[0], password="guess")

        codes = await asyncio.gather(*(attempt(apis[n % 2], password="guess") for n in range(20)))
    finally:
        for client in clients:
            await client.aclose()

    assert codes == ["RATE_LIMITED"] * 20
    [event] = await AuditEvent.filter(action=AuditAction.LOGIN_THROTTLED)
    assert (event.detail or {})["count"] == 20


async def test_throttled_attempts_of_distinct_emails_are_audited_apart(
    make_client: MakeClient, make_user: UserFactory
) -> None:
    await make_user(EMAIL)
    await make_user("other@acme.example")
    attacker = make_client(client_ip="198.51.100.9")
    for email in (EMAIL, "other@acme.example"):
        for _ in range(5):
            await attempt(attacker, email=email, password="guess")

    events = await AuditEvent.filter(action=AuditAction.LOGIN_THROTTLED).order_by("id")
    assert [(e.actor_email, (e.detail or {})["count"]) for e in events] == [
        (EMAIL, 2),
        ("other@acme.example", 2),
    ]


async def test_a_failing_throttle_store_refuses_sign_in_without_checking_a_password(
    make_client: MakeClient,
    make_user: UserFactory,
    verifier: CountingVerifier,
    store: RecordingStore,
) -> None:
    await make_user(EMAIL)
    api = make_client()
    checks_before = verifier.verify_calls
    store.failing = True

    response = await api.post(LOGIN, email=EMAIL, password=PASSWORD)
    body = response.json()

    # The whole request is to be retried: 503 with Retry-After, and a code that says so.
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert only_error_code(body) == "SERVICE_UNAVAILABLE"
    assert body["errors"][0]["extensions"]["requestId"]
    assert "throttle store is down" not in json.dumps(body)
    assert verifier.verify_calls == checks_before
    assert await Session.all().count() == 0
    store.failing = False
    assert await attempt(api) is None


async def test_a_huge_email_is_throttled_by_its_digest(
    make_client: MakeClient, store: RecordingStore
) -> None:
    api = make_client()
    huge = "a" * 60_000 + "@acme.example"

    assert await attempt(api, email=huge, password="guess") == "UNAUTHENTICATED"

    assert store.names
    assert max(len(name) for name in store.names) <= 64


async def _post_raw(api: Api, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    # json.dumps escapes a lone surrogate as \\udXXX, which JSON allows; the body is refused
    # as a whole (400, docs/limits.md) before any resolver runs.
    content = json.dumps({"query": query, "variables": variables})
    response = await api.client.post(
        "/graphql", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(
    ("email", "password"),
    [(EMAIL, "correct horse\ud800"), ("admin@acme.example\udfff", PASSWORD)],
    ids=["password", "email"],
)
async def test_a_lone_surrogate_at_sign_in_is_bad_input_refused_before_any_check(
    make_client: MakeClient, make_user: UserFactory, email: str, password: str
) -> None:
    await make_user(EMAIL)
    api = make_client()

    body = await _post_raw(api, LOGIN, {"email": email, "password": password})

    # No password was checked: nothing to audit, nothing a throttle needs to count.
    assert only_error_code(body) == "BAD_USER_INPUT"
    assert [e.action for e in await AuditEvent.all()] == []
    assert await Session.all().count() == 0


@pytest.mark.parametrize(
    ("query", "variables", "field"),
    [
        (
            "mutation C($n: String!) { createApiKey(input: {name: $n}) { keySecret } }",
            {"n": "CI \ud800 deploy"},
            "input.name",
        ),
        (
            "query S($s: String) { apiKeys(search: $s) { totalCount } }",
            {"s": "ci\udc00"},
            "search",
        ),
        ("query K($id: ID!) { apiKey(id: $id) { id } }", {"id": "wfak_\ud800"}, "id"),
        (
            "mutation D($id: ID!) { deleteApiKey(id: $id) { id } }",
            {"id": "wfak_" + "a" * 19 + "\ud800"},
            "id",
        ),
        (
            "query P($a: String) { auditEvents(after: $a) { totalCount } }",
            {"a": "Y3Vyc29y\ud800"},
            "after",
        ),
    ],
    ids=["name", "search", "key-id", "delete-key-id", "cursor"],
)
async def test_a_lone_surrogate_in_an_argument_is_bad_user_input(
    make_client: MakeClient,
    make_user: UserFactory,
    query: str,
    variables: dict[str, Any],
    field: str,
) -> None:
    await make_user(EMAIL)
    api = make_client()
    assert await attempt(api) is None
    events_before = await AuditEvent.all().count()

    body = await _post_raw(api, query, variables)

    assert only_error_code(body) == "BAD_USER_INPUT"
    # Refused as a body (docs/limits.md), before the argument ({field}) is read.
    assert "field" not in body["errors"][0]["extensions"], field
    assert await AuditEvent.all().count() == events_before


async def test_refused_sign_ins_with_distinct_emails_from_one_address_add_one_row_per_window(
    make_client: MakeClient, make_user: UserFactory, clock: MonotonicClock
) -> None:
    await make_user(EMAIL)
    attacker = make_client(client_ip="198.51.100.9")

    codes = [await attempt(attacker, email=f"u{n}@spray.example", password="g") for n in range(200)]
    # The account of a real user among them: still the address's row, no actor.
    codes.append(await attempt(attacker, password="guess"))

    assert codes.count("UNAUTHENTICATED") == 50
    assert codes.count("RATE_LIMITED") == 151
    # 50 refused sign-ins, then one row per address and organization, counted in place.
    assert await AuditEvent.filter(action=AuditAction.LOGIN_FAILED).count() == 50
    throttled = await AuditEvent.filter(action=AuditAction.LOGIN_THROTTLED).order_by("id")
    assert [
        (e.actor_email, e.organization_id is None, (e.detail or {})["count"]) for e in throttled
    ] == [
        (None, True, 150),
        (None, False, 1),
    ]
    assert await AuditEvent.all().count() <= 60
    assert all("spray" not in json.dumps(e.detail) for e in throttled)
