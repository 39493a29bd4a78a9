"""A key's scopes reach ``request.auth``; requires_scope and Starlette's @requires honour them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from support.keys import CountingStore, CountingVerifier, basic, client_for
from wfa_auth import ApiKeyAuthMiddleware, requires_scope

Make = Callable[..., ApiKeyAuthMiddleware]


@requires_scope("workflows:read")
async def read(request: Request) -> JSONResponse:
    return JSONResponse({"scopes": request.auth.scopes})


@requires("workflows:write")
async def write(request: Request) -> JSONResponse:
    return JSONResponse({"written": True})


def scoped_app(
    store: CountingStore, verifier: CountingVerifier, **options: Any
) -> ApiKeyAuthMiddleware:
    app = Starlette(routes=[Route("/read", read), Route("/write", write, methods=["POST"])])
    return ApiKeyAuthMiddleware(app, store=store, verifier=verifier, **options)


def make_key(store: CountingStore, verifier: CountingVerifier, *scopes: str) -> tuple[str, str]:
    record, secret = store.create_key(
        verifier, name="CI", owner_email="ada@example.com", organization_name="Acme", scopes=scopes
    )
    return record.key_id, secret


async def test_a_keys_scopes_follow_authenticated_in_request_auth(
    store: CountingStore, verifier: CountingVerifier
) -> None:
    key_id, secret = make_key(store, verifier, "workflows:read")
    async with client_for(scoped_app(store, verifier)) as client:
        response = await client.get("/read", headers=basic(key_id, secret))
    assert response.status_code == 200
    assert response.json() == {"scopes": ["authenticated", "workflows:read"]}


async def test_a_missing_scope_is_refused_403_with_json_naming_it(
    store: CountingStore, verifier: CountingVerifier
) -> None:
    key_id, secret = make_key(store, verifier, "workflows:write")
    async with client_for(scoped_app(store, verifier)) as client:
        response = await client.get("/read", headers=basic(key_id, secret))
    assert response.status_code == 403
    assert response.json() == {
        "error": "insufficient_scope",
        "message": "This API key does not have the scope workflows:read.",
        "scope": "workflows:read",
    }
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_starlettes_requires_honours_the_keys_scopes(
    store: CountingStore, verifier: CountingVerifier
) -> None:
    writer = make_key(store, verifier, "workflows:write")
    reader = make_key(store, verifier, "workflows:read")
    async with client_for(scoped_app(store, verifier)) as client:
        allowed = await client.post("/write", headers=basic(*writer))
        refused = await client.post("/write", headers=basic(*reader))
    assert (allowed.status_code, allowed.json()) == (200, {"written": True})
    assert refused.status_code == 403


async def test_the_scopes_option_is_granted_to_every_key_before_its_own(
    store: CountingStore, verifier: CountingVerifier
) -> None:
    key_id, secret = make_key(store, verifier, "workflows:read", "beta")
    app = scoped_app(store, verifier, scopes=("authenticated", "beta", "tenant:acme"))
    async with client_for(app) as client:
        response = await client.get("/read", headers=basic(key_id, secret))
    assert response.json() == {"scopes": ["authenticated", "beta", "tenant:acme", "workflows:read"]}


async def test_auth_credentials_are_built_once_per_checked_record_not_per_request(
    store: CountingStore, verifier: CountingVerifier
) -> None:
    key_id, secret = make_key(store, verifier, "workflows:read")
    seen: list[object] = []

    async def spy(request: Request) -> JSONResponse:
        seen.append(request.auth)
        return JSONResponse({})

    app = ApiKeyAuthMiddleware(
        Starlette(routes=[Route("/spy", spy)]), store=store, verifier=verifier
    )
    async with client_for(app) as client:
        for _ in range(3):
            assert (await client.get("/spy", headers=basic(key_id, secret))).status_code == 200
    assert len(seen) == 3
    assert seen[0] is seen[1] is seen[2]


async def test_a_scope_change_is_seen_once_key_changed(
    store: CountingStore, verifier: CountingVerifier
) -> None:
    key_id, secret = make_key(store, verifier, "workflows:read")
    app = scoped_app(store, verifier)
    async with client_for(app) as client:
        assert (await client.get("/read", headers=basic(key_id, secret))).status_code == 200
        store.update(key_id, scopes=())
        await app.key_changed(key_id)
        response = await client.get("/read", headers=basic(key_id, secret))
    assert (response.status_code, response.json()["scope"]) == (403, "workflows:read")
