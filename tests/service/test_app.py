"""The composed application: routes, health check, body limit and lifespan."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
import pytest
from starlette.responses import PlainTextResponse
from starlette.types import Message, Receive, Scope, Send
from tortoise.context import TortoiseContext

from support.gql import LOGIN, PASSWORD, Api, only_error_code
from support.settings import cheap_settings
from wfa_keys.app import create_app
from wfa_keys.db import database
from wfa_keys.models import ApiKey, AuditEvent, Role, User
from wfa_keys.settings import Settings
from wfa_keys.users import create_user

if TYPE_CHECKING:
    from service.conftest import UserFactory


def client_of(settings: Settings) -> httpx2.AsyncClient:
    """A client of the full app, as a browser or curl on this host would talk to it."""
    transport = httpx2.ASGITransport(app=create_app(settings), client=("127.0.0.1", 50000))
    return httpx2.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def client(db: TortoiseContext, settings: Settings) -> AsyncIterator[httpx2.AsyncClient]:
    """A client of the full app on the test database."""
    del db
    async with client_of(settings) as client:
        yield client


def unreachable_url_like(database_url: str, tmp_path: Path) -> str:
    """A URL of the same backend as ``database_url`` where no database answers."""
    if database_url.startswith("sqlite"):
        garbage = tmp_path / "not-a-database.sqlite3"
        garbage.write_bytes(b"this is not a SQLite database" * 100)
        return f"sqlite://{garbage}"
    with socket.socket() as sock:  # a port nothing listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgres://postgres@127.0.0.1:{port}/nothing"


async def test_healthz_reports_each_dependency_once_the_process_follows_changes(
    db: TortoiseContext, database_url: str
) -> None:
    del db
    app = create_app(cheap_settings(database_url=database_url))
    transport = httpx2.ASGITransport(app=app)
    async with (
        httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client,
        app.router.lifespan_context(app),
    ):
        for _ in range(100):
            response = await client.get("/healthz")
            if response.status_code == 200:
                break
            await asyncio.sleep(0.05)

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "change_feed": "ok", "throttle_store": "ok"},
    }


async def test_healthz_answers_503_naming_what_is_down_and_livez_answers_200(
    database_url: str, tmp_path: Path, settings: Settings
) -> None:
    async with (
        database(unreachable_url_like(database_url, tmp_path), migrate=False),
        client_of(settings) as client,
    ):
        response = await client.get("/healthz")
        alive = await client.get("/livez")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    # No lifespan ran: the change feed was never followed. The database throttle store is
    # the database.
    assert response.json() == {
        "status": "unavailable",
        "checks": {
            "database": "unavailable",
            "change_feed": "unavailable",
            "throttle_store": "unavailable",
        },
    }
    assert alive.status_code == 200
    assert alive.json() == {"status": "alive"}


async def test_graphql_is_served_at_slash_graphql_without_redirect(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.post("/graphql", json={"query": "{ me { email } }"})

    assert response.status_code == 200
    assert response.json() == {"data": {"me": None}}


async def test_api_is_mounted_under_slash_api_and_needs_a_key(client: httpx2.AsyncClient) -> None:
    response = await client.get("/api/v1/whoami")

    assert response.status_code == 401
    assert "error" in response.json()


@pytest.mark.parametrize("console", [True, False])
async def test_api_without_its_slash_is_redirected_to_it(
    db: TortoiseContext, settings: Settings, console: bool
) -> None:
    # With the console on, its catch-all mount at / used to answer /api with the page's 404.
    async with client_of(dataclasses.replace(settings, console=console)) as client:
        response = await client.get("/api?x=1")
        followed = await client.get("/api", follow_redirects=True)

    assert response.status_code == 307
    assert response.headers["location"] == "http://testserver/api/?x=1"
    assert followed.status_code == 401
    assert followed.json()["error"] == "missing_credentials"


async def test_key_created_through_graphql_authenticates_the_api_at_once(
    client: httpx2.AsyncClient, make_user: UserFactory
) -> None:
    await make_user("admin@acme.example")
    api = Api(client)
    assert "errors" not in await api.login("admin@acme.example")
    created = await api.create_key("deploy")
    key_id, secret = created["apiKey"]["id"], created["keySecret"]

    token = await client.post(
        "/api/v1/auth/api-key/token", json={"key_id": key_id, "key_secret": secret}
    )
    assert token.status_code == 200
    whoami = await client.get(
        "/api/v1/whoami", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    )
    assert whoami.status_code == 200
    assert whoami.json()["key_id"] == key_id
    assert whoami.json()["owner_email"] == "admin@acme.example"

    # Disabling it through GraphQL is seen by the API on the next call (key_changed is wired).
    disabled = await api(
        "mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: false) { enabled } }", id=key_id
    )
    assert disabled["data"]["setApiKeyEnabled"]["enabled"] is False
    refused = await client.get(
        "/api/v1/whoami", headers={"X-API-Key-ID": key_id, "X-API-Key-Secret": secret}
    )
    assert refused.status_code == 401
    assert (await ApiKey.get(key_id=key_id)).enabled is False


def login_body(size: int) -> bytes:
    """A JSON ``login`` request of exactly ``size`` bytes (the password pads it)."""
    variables = {"email": "nobody@acme.example", "password": ""}
    envelope: dict[str, Any] = {"query": LOGIN, "variables": variables}
    empty = len(json.dumps(envelope).encode())
    variables["password"] = "p" * (size - empty)
    return json.dumps(envelope).encode()


async def test_body_above_the_limit_is_refused_with_413_before_any_resolver(
    db: TortoiseContext,
) -> None:
    del db
    settings = cheap_settings(database_url="unused", max_body_bytes=1024)
    headers = {"Content-Type": "application/json"}
    async with client_of(settings) as client:
        at_limit = await client.post("/graphql", content=login_body(1024), headers=headers)
        above = await client.post("/graphql", content=login_body(1025), headers=headers)

    assert len(at_limit.request.content) == 1024
    assert at_limit.status_code == 200
    assert only_error_code(at_limit.json()) == "UNAUTHENTICATED"
    assert above.status_code == 413
    assert above.headers["X-Request-ID"]
    assert above.headers["X-Content-Type-Options"] == "nosniff"
    # Only the request at the limit reached the login resolver (a failed login is audited).
    assert await AuditEvent.all().count() == 1


async def test_lifespan_opens_and_migrates_the_database_and_closes_it(
    database_url: str, tmp_path: Path
) -> None:
    # A new SQLite file shows the migrations run; PostgreSQL is migrated already.
    url = (
        f"sqlite://{tmp_path / 'fresh.sqlite3'}"
        if database_url.startswith("sqlite")
        else database_url
    )
    app = create_app(cheap_settings(database_url=url))
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
        async with app.router.lifespan_context(app):
            # Ready once the change feed is up too (on PostgreSQL its LISTEN connection).
            for _ in range(100):
                ready = await client.get("/healthz")
                if ready.status_code == 200:
                    break
                await asyncio.sleep(0.05)
            await User.filter(email="lifespan@acme.example").delete()
            await create_user(
                cheap_settings(),
                email="lifespan@acme.example",
                password=PASSWORD,
                organization="Lifespan",
                role=Role.MEMBER,
            )
            stored = await User.get(email="lifespan@acme.example")
            # What startup built is left out of the collector's full passes (p99 pauses).
            frozen = gc.get_freeze_count()
        after = await client.get("/healthz")

    assert ready.status_code == 200
    assert stored.role is Role.MEMBER
    assert frozen > 0
    assert after.status_code == 503


# -- The API's lane -------------------------------------------------------------------------


async def chunks(size: int) -> AsyncIterator[bytes]:
    """A body of ``size`` bytes sent without Content-Length (chunked)."""
    for _ in range(size // 100):
        yield b" " * 100


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_api_calls_keep_the_body_limit_the_request_id_and_the_headers(
    db: TortoiseContext, chunked: bool
) -> None:
    del db
    settings = cheap_settings(database_url="unused", max_body_bytes=1024)
    body: Any = chunks(2000) if chunked else b" " * 2000
    async with client_of(settings) as client:
        above = await client.post(
            "/api/v1/auth/api-key/token",
            content=body,
            headers={"Content-Type": "application/json", "Origin": "https://evil.example"},
        )
        unauthenticated = await client.get("/api/v1/whoami")

    assert ("content-length" in above.request.headers) is not chunked
    assert above.status_code == 413
    for response in (above, unauthenticated):
        assert response.headers["X-Request-ID"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
        assert "access-control-allow-origin" not in response.headers
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"] == "missing_credentials"


async def test_the_api_answers_below_a_mount_point_and_below_wfa_root_path(
    db: TortoiseContext, settings: Settings
) -> None:
    del db
    from starlette.applications import Starlette
    from starlette.routing import Mount

    mounted = Starlette(routes=[Mount("/keys", app=create_app(settings))])
    prefixed = create_app(dataclasses.replace(settings, root_path="/keys"))
    for app, path in ((mounted, "/keys/api/v1/whoami"), (prefixed, "/api/v1/whoami")):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as c:
            response = await c.get(path)
            elsewhere = await c.get(path.replace("/api/", "/apiary/"))

        assert response.status_code == 401, path
        assert response.json()["error"] == "missing_credentials"
        assert response.headers["X-Request-ID"]
        assert elsewhere.status_code != 401


@pytest.mark.parametrize(
    ("outer", "path"),
    [
        ({}, "/api/v1/whoami"),
        ({"root_path": "/keys"}, "/keys/api/v1/whoami"),
        ({"root_path": "/keys", "app_root_path": "/"}, "/keys/api/"),
        ({"path_params": {"tenant": "acme"}}, "/api/v1/workflows"),
    ],
)
async def test_the_api_lane_gives_the_api_the_scope_its_mount_would(
    outer: dict[str, Any], path: str
) -> None:
    from starlette.routing import Mount

    from wfa_keys.app import ApiLane

    seen: list[Scope] = []

    async def api(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(dict(scope))
        await PlainTextResponse("ok")(scope, receive, send)

    mount = Mount("/api", app=api)
    lane = ApiLane(api, mount=mount, max_body_size=1024)
    scope: Scope = {"type": "http", "method": "GET", "path": path, "headers": [], **outer}
    _match, child = mount.matches(dict(scope))

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        pass

    await lane(dict(scope), receive, send)

    (given,) = seen
    assert child  # the mount matches this path
    assert {name: given[name] for name in child} == child
