"""The sample Workflow Automation API, mounted under /api as ``wfa-keys serve`` does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount
from tortoise.context import TortoiseContext

from support.bad_bytes import bad_bodies, examples
from support.clock import Clock
from support.keys import basic
from support.settings import cheap_settings
from wfa_auth import generate_key_id, generate_key_secret, token_digest
from wfa_keys.api import ApiJSONResponse, create_api
from wfa_keys.app import create_app
from wfa_keys.crypto import hasher_for
from wfa_keys.models import AccessToken, ApiKey, Organization, Role, User, Workflow
from wfa_keys.scopes import default_scope_names
from wfa_keys.settings import Settings

SETTINGS = cheap_settings(database_url="unused", token_ttl=900)


@pytest.fixture
async def http(db: TortoiseContext) -> AsyncIterator[Any]:
    api = create_api(SETTINGS)
    app = Starlette(routes=[Mount("/api", app=api)])
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
        client.api = api  # type: ignore[attr-defined]
        yield client
    await api.flush_usage()


async def make_key(
    *, scopes: Sequence[str] | None = None, allowed_cidrs: Sequence[str] = ()
) -> tuple[ApiKey, str]:
    """A key of ada@acme.test written as the service writes it (the default scopes)."""
    org, _ = await Organization.get_or_create(name="Acme", has_workflow_automation=True)
    owner, _ = await User.get_or_create(
        email="ada@acme.test",
        defaults={"password_hash": "unused", "role": Role.ADMIN, "organization": org},
    )
    secret = generate_key_secret()
    key = await ApiKey.create(
        key_id=generate_key_id(),
        name="Nightly export",
        secret_hash=hasher_for(SETTINGS).hash(secret),
        owner=owner,
        organization=org,
        scopes=default_scope_names() if scopes is None else list(scopes),
        allowed_cidrs=list(allowed_cidrs),
    )
    return key, secret


async def test_token_exchange_and_whoami_under_api(http: Any) -> None:
    key, secret = await make_key()
    response = await http.post(
        "/api/v1/auth/api-key/token", json={"key_id": key.key_id, "key_secret": secret}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    response = await http.get(
        "/api/v1/whoami", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert response.status_code == 200
    org = await Organization.get(name="Acme")
    assert response.json() == {
        "key_id": key.key_id,
        "key_name": "Nightly export",
        "owner_email": "ada@acme.test",
        "organization": "Acme",
        "organization_id": str(org.id),
        "scopes": ["workflows:read", "workflows:write"],
    }
    assert secret not in response.text
    assert key.secret_hash not in response.text
    # Rendered by orjson, byte for byte what Starlette's JSONResponse renders.
    assert response.content == JSONResponse(response.json()).body
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "content", [{"name": 'Nächtlicher Export \u2603 "q" \\ \n'}, {"n": [1, -2, 3.5, None, True]}]
)
def test_api_answers_are_rendered_as_starlette_renders_them(content: dict[str, Any]) -> None:
    assert ApiJSONResponse(content).body == JSONResponse(content).body


async def test_whoami_accepts_basic_credentials(http: Any) -> None:
    key, secret = await make_key()
    response = await http.get("/api/v1/whoami", auth=(key.key_id, secret))
    assert response.status_code == 200
    assert response.json()["key_id"] == key.key_id


async def test_whoami_without_credentials_is_refused(http: Any) -> None:
    response = await http.get("/api/v1/whoami")
    assert response.status_code == 401
    assert response.json()["error"] == "missing_credentials"
    assert "www-authenticate" in response.headers


async def test_disabled_key_is_refused_once_key_changed_and_works_when_enabled(
    http: Any,
) -> None:
    key, secret = await make_key()
    assert (await http.get("/api/v1/whoami", auth=(key.key_id, secret))).status_code == 200
    await ApiKey.filter(key_id=key.key_id).update(enabled=False)
    await http.api.key_changed(key.key_id)
    response = await http.get("/api/v1/whoami", auth=(key.key_id, secret))
    assert (response.status_code, response.json()["error"]) == (401, "key_disabled")
    await ApiKey.filter(key_id=key.key_id).update(enabled=True)
    await http.api.key_changed(key.key_id)
    assert (await http.get("/api/v1/whoami", auth=(key.key_id, secret))).status_code == 200


# -- the whole service (wfa_keys.app) over ASGI: scopes, allow-lists, last use ---------------


@pytest.fixture
async def service(db: TortoiseContext) -> AsyncIterator[Any]:
    """The app ``wfa-keys serve`` runs; ``service(ip)`` is a client calling from ``ip``."""
    app = create_app(Settings(database_url="unused", token_ttl=900, console=False))
    clients: list[httpx2.AsyncClient] = []

    def at(ip: str) -> httpx2.AsyncClient:
        transport = httpx2.ASGITransport(app=app, client=(ip, 50000))
        client = httpx2.AsyncClient(transport=transport, base_url="http://testserver")
        clients.append(client)
        return client

    yield at
    for client in clients:
        await client.aclose()


async def test_a_failing_api_route_answers_a_plain_500_with_the_request_id_and_headers(
    db: TortoiseContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API has no error layer of its own on the service's lane: the request log answers.
    del db
    key, secret = await make_key()

    def failing(**_filters: Any) -> Any:
        raise RuntimeError("SELECT secret_hash FROM api_key -- hunter2")

    monkeypatch.setattr(Workflow, "filter", failing)
    app = create_app(Settings(database_url="unused", token_ttl=900, console=False))
    transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/api/v1/workflows", auth=(key.key_id, secret))
        whoami = await client.get("/api/v1/whoami", auth=(key.key_id, secret))

    assert (response.status_code, response.text) == (500, "Internal Server Error")
    assert response.headers["X-Request-ID"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert whoami.status_code == 200


async def test_a_read_only_key_lists_workflows_but_cannot_create_one(service: Any) -> None:
    key, secret = await make_key(scopes=["workflows:read"])
    await Workflow.create(organization_id=key.organization_id, name="Sync", created_by_key_id="x")
    client = service("10.0.0.1")
    listed = await client.get("/api/v1/workflows", auth=(key.key_id, secret))
    created = await client.post("/api/v1/workflows", auth=(key.key_id, secret), json={"name": "A"})
    assert listed.status_code == 200
    assert [w["name"] for w in listed.json()["workflows"]] == ["Sync"]
    assert created.status_code == 403
    assert created.json() == {
        "error": "insufficient_scope",
        "message": "This API key does not have the scope workflows:write.",
        "scope": "workflows:write",
    }
    assert await Workflow.all().count() == 1


async def test_a_key_with_both_scopes_creates_then_lists_a_workflow(service: Any) -> None:
    key, secret = await make_key(scopes=["workflows:read", "workflows:write"])
    client = service("10.0.0.1")
    created = await client.post(
        "/api/v1/workflows", auth=(key.key_id, secret), json={"name": "Nightly"}
    )
    listed = await client.get("/api/v1/workflows", auth=(key.key_id, secret))
    assert created.status_code == 201
    assert created.json()["created_by_key_id"] == key.key_id
    assert [w["name"] for w in listed.json()["workflows"]] == ["Nightly"]


async def test_a_key_without_scopes_can_call_whoami_only(service: Any) -> None:
    key, secret = await make_key(scopes=[])
    client = service("10.0.0.1")
    whoami = await client.get("/api/v1/whoami", auth=(key.key_id, secret))
    listed = await client.get("/api/v1/workflows", auth=(key.key_id, secret))
    created = await client.post("/api/v1/workflows", auth=(key.key_id, secret), json={"name": "A"})
    assert (whoami.status_code, whoami.json()["scopes"]) == (200, [])
    assert (listed.status_code, listed.json()["scope"]) == (403, "workflows:read")
    assert (created.status_code, created.json()["scope"]) == (403, "workflows:write")
    assert await Workflow.all().count() == 0


IP_NOT_ALLOWED = {
    "error": "ip_not_allowed",
    "message": "This API key may not be used from this network address.",
}


@pytest.mark.parametrize("ip", ["10.20.3.4", "2001:db8:1::5", "::ffff:10.20.0.1"])
async def test_an_allow_listed_key_is_accepted_from_inside(service: Any, ip: str) -> None:
    key, secret = await make_key(allowed_cidrs=["10.20.0.0/16", "2001:db8:1::/48"])
    client = service(ip)
    whoami = await client.get("/api/v1/whoami", auth=(key.key_id, secret))
    token = await client.post(
        "/api/v1/auth/api-key/token", json={"key_id": key.key_id, "key_secret": secret}
    )
    assert whoami.status_code == 200
    assert token.status_code == 200


@pytest.mark.parametrize("ip", ["10.21.0.1", "2001:db8:2::1", "::ffff:10.21.0.1", "127.0.0.1"])
async def test_an_allow_listed_key_is_refused_from_outside_and_gets_no_token(
    service: Any, ip: str
) -> None:
    key, secret = await make_key(allowed_cidrs=["10.20.0.0/16", "2001:db8:1::/48"])
    inside, outside = service("10.20.0.1"), service(ip)
    # Verified from inside first: the warm request from outside must not ride on it.
    assert (await inside.get("/api/v1/whoami", auth=(key.key_id, secret))).status_code == 200
    whoami = await outside.get("/api/v1/whoami", auth=(key.key_id, secret))
    token = await outside.post(
        "/api/v1/auth/api-key/token", json={"key_id": key.key_id, "key_secret": secret}
    )
    assert (whoami.status_code, whoami.json()) == (403, IP_NOT_ALLOWED)
    assert (token.status_code, token.json()) == (403, IP_NOT_ALLOWED)
    assert await AccessToken.filter(key_id=key.key_id).count() == 0
    # A token obtained inside is refused outside too.
    issued = await inside.post(
        "/api/v1/auth/api-key/token", json={"key_id": key.key_id, "key_secret": secret}
    )
    bearer = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    assert (await inside.get("/api/v1/whoami", headers=bearer)).status_code == 200
    refused = await outside.get("/api/v1/whoami", headers=bearer)
    assert (refused.status_code, refused.json()) == (403, IP_NOT_ALLOWED)


async def test_a_wrong_secret_from_outside_an_allow_list_is_just_invalid(service: Any) -> None:
    key, _ = await make_key(allowed_cidrs=["10.20.0.0/16"])
    response = await service("192.0.2.1").get(
        "/api/v1/whoami", auth=(key.key_id, generate_key_secret())
    )
    assert (response.status_code, response.json()["error"]) == (401, "invalid_credentials")


async def test_the_last_use_is_written_with_its_address(service: Any) -> None:
    key, secret = await make_key()
    assert (key.last_used_at, key.last_used_ip) == (None, None)
    response = await service("2001:db8::abcd").get("/api/v1/whoami", auth=(key.key_id, secret))
    assert response.status_code == 200
    # The first use of a key is written at once (after the response).
    await key.refresh_from_db()
    assert key.last_used_at is not None
    assert key.last_used_ip == "2001:db8::abcd"


async def test_the_address_written_is_the_one_of_the_latest_use_in_the_interval(
    db: TortoiseContext,
) -> None:
    key, secret = await make_key()
    api = create_api(SETTINGS)
    app = Starlette(routes=[Mount("/api", app=api)])
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        transport = httpx2.ASGITransport(app=app, client=(ip, 50000))
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as c:
            assert (await c.get("/api/v1/whoami", auth=(key.key_id, secret))).status_code == 200
    await key.refresh_from_db()
    assert key.last_used_ip == "10.0.0.1"  # written at once; the next uses are deferred
    await api.flush_usage()
    await key.refresh_from_db()
    assert key.last_used_ip == "10.0.0.3"


# -- grace periods, with an injected clock ---------------------------------------------------


async def test_the_old_secret_and_its_tokens_work_until_the_grace_period_ends(
    db: TortoiseContext,
) -> None:
    clock = Clock()
    api = create_api(SETTINGS, clock=clock, timer=lambda: clock().timestamp())
    transport = httpx2.ASGITransport(app=Starlette(routes=[Mount("/api", app=api)]))
    key, old = await make_key()
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:

        async def status(headers: dict[str, str]) -> tuple[int, str | None]:
            response = await client.get("/api/v1/whoami", headers=headers)
            return response.status_code, response.json().get("error")

        issued = await client.post(
            "/api/v1/auth/api-key/token", json={"key_id": key.key_id, "key_secret": old}
        )
        old_token = issued.json()["access_token"]
        # Regenerated with a 10-minute grace period, as the service does it.
        new = generate_key_secret()
        ends = clock() + timedelta(minutes=10)
        await ApiKey.filter(key_id=key.key_id).update(
            secret_hash=hasher_for(SETTINGS).hash(new),
            previous_secret_hash=key.secret_hash,
            previous_secret_expires_at=ends,
        )
        await api.key_changed(key.key_id)
        old_basic = basic(key.key_id, old)
        new_basic = basic(key.key_id, new)
        bearer = {"Authorization": f"Bearer {old_token}"}
        assert await status(old_basic) == (200, None)
        assert await status(bearer) == (200, None)
        assert await status(new_basic) == (200, None)
        clock.advance(10 * 60 - 1)
        assert await status(old_basic) == (200, None)
        assert await status(bearer) == (200, None)
        clock.advance(1)
        assert await status(old_basic) == (401, "invalid_credentials")
        assert await status(bearer) == (401, "invalid_token")
        assert await status(new_basic) == (200, None)
    # The refused token is gone from the database.
    assert not await AccessToken.filter(token_hash=token_digest(old_token)).exists()


# -- bad bytes: lone surrogates and bodies not UTF-8 (fuzzed) --------------------------------

BAD_BODY_EXAMPLES = 100


def _invalid_request_problem(response: httpx2.Response) -> str | None:
    if response.status_code != 400:
        return f"status {response.status_code}: {response.text[:200]}"
    if response.headers.get("content-type", "").split(";")[0] != "application/json":
        return f"not JSON: {response.headers.get('content-type')}"
    if response.json().get("error") != "invalid_request":
        return f"not invalid_request: {response.text[:200]}"
    return None


async def test_bad_bytes_in_a_token_request_or_a_new_workflow_are_invalid_requests(
    service: Any,
) -> None:
    key, secret = await make_key()
    client = service("203.0.113.7")
    token_bodies = examples(
        bad_bodies({"key_id": key.key_id, "key_secret": secret, "note": ["x", {"k": "v"}]}),
        BAD_BODY_EXAMPLES,
    )
    workflow_bodies = examples(
        bad_bodies({"name": "Nightly", "tags": ["x", {"k": "v"}]}), BAD_BODY_EXAMPLES
    )
    failures: list[str] = []
    for body in token_bodies:
        response = await client.post("/api/v1/auth/api-key/token", content=body)
        if problem := _invalid_request_problem(response):
            failures.append(f"token: {problem}\n{body!r:.300}")
    for body in workflow_bodies:
        response = await client.post(
            "/api/v1/workflows",
            content=body,
            headers={"Content-Type": "application/json"},
            auth=(key.key_id, secret),
        )
        if problem := _invalid_request_problem(response):
            failures.append(f"workflows: {problem}\n{body!r:.300}")

    assert not failures, "\n\n".join(failures[:5])
    assert await Workflow.all().count() == 0  # none made from a bad body, nor half of one
    # The good bodies themselves are accepted: the refusals are the corruption's doing.
    token = await client.post(
        "/api/v1/auth/api-key/token", json={"key_id": key.key_id, "key_secret": secret}
    )
    created = await client.post(
        "/api/v1/workflows", json={"name": "Nightly"}, auth=(key.key_id, secret)
    )
    assert (token.status_code, created.status_code) == (200, 201)
