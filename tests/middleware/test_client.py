"""wfa_auth.client: WfaKeyAuth exchanges the Key ID and Key Secret once and reuses the token."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import Receive, Scope, Send

from support.clock import MonotonicClock
from support.counting import Counted
from support.keys import CountingStore, CountingVerifier, inner_app
from support.threaded_server import serving
from wfa_auth import ApiKeyAuthMiddleware, MemoryKeyRecord, MemoryTokenStore
from wfa_auth.client import TokenExchangeError, WfaKeyAuth

TOKEN_PATH = "/v1/auth/api-key/token"
Key = tuple[MemoryKeyRecord, str]


@pytest.fixture
def tokens() -> MemoryTokenStore:
    return MemoryTokenStore()


@pytest.fixture
def middleware(
    make_middleware: Callable[..., ApiKeyAuthMiddleware], tokens: MemoryTokenStore
) -> ApiKeyAuthMiddleware:
    return make_middleware(token_store=tokens)


@pytest.fixture
def server(middleware: ApiKeyAuthMiddleware) -> Counted:
    return Counted(middleware)


def async_client(app: Any, auth: WfaKeyAuth) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", auth=auth)


async def test_one_exchange_serves_many_calls(server: Counted, key: Key) -> None:
    record, secret = key
    async with async_client(server, WfaKeyAuth(record.key_id, secret)) as client:
        responses = [await client.get("/whoami") for _ in range(5)]
    assert [r.status_code for r in responses] == [200] * 5
    assert {r.json()["key_id"] for r in responses} == {record.key_id}
    assert server.count(TOKEN_PATH) == 1
    api_headers = [headers for path, headers in server.calls if path == "/whoami"]
    assert all(h["authorization"].startswith("Bearer ") for h in api_headers)
    assert not any(secret in value for h in api_headers for value in h.values())


async def test_concurrent_calls_share_one_exchange(server: Counted, key: Key) -> None:
    record, secret = key
    statuses: list[int] = []
    async with async_client(server, WfaKeyAuth(record.key_id, secret)) as client:

        async def call() -> None:
            statuses.append((await client.get("/whoami")).status_code)

        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(call)
    assert statuses == [200] * 8
    assert server.count(TOKEN_PATH) == 1


async def test_the_token_is_exchanged_again_shortly_before_it_expires(
    server: Counted, key: Key
) -> None:
    record, secret = key
    clock = MonotonicClock()
    auth = WfaKeyAuth(record.key_id, secret, refresh_before=30, clock=clock)
    async with async_client(server, auth) as client:
        await client.get("/whoami")
        clock.advance(3600 - 31)  # the server's token_ttl is 3600 s
        await client.get("/whoami")
        exchanges_before_expiry = server.count(TOKEN_PATH)
        clock.advance(2)
        response = await client.get("/whoami")
    assert exchanges_before_expiry == 1
    assert response.status_code == 200
    assert server.count(TOKEN_PATH) == 2


async def test_a_revoked_token_is_exchanged_again_once(
    server: Counted, middleware: ApiKeyAuthMiddleware, tokens: MemoryTokenStore, key: Key
) -> None:
    record, secret = key
    async with async_client(server, WfaKeyAuth(record.key_id, secret)) as client:
        assert (await client.get("/whoami")).status_code == 200
        # The server forgets its tokens (a restart with in-memory tokens, a revocation).
        tokens.tokens.clear()
        middleware.all_keys_changed()
        response = await client.get("/whoami")
    assert response.status_code == 200
    assert server.count(TOKEN_PATH) == 2
    assert server.count("/whoami") == 3


async def test_a_route_that_keeps_answering_401_is_retried_only_once(
    make_middleware: Callable[..., ApiKeyAuthMiddleware], key: Key
) -> None:
    async def always_401(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b"no"})

    middleware = make_middleware()
    middleware.app = always_401
    server = Counted(middleware)
    record, secret = key
    async with async_client(server, WfaKeyAuth(record.key_id, secret)) as client:
        response = await client.get("/anything")
    assert response.status_code == 401
    assert server.count(TOKEN_PATH) == 2
    assert server.count("/anything") == 2


async def test_a_refused_exchange_raises_without_the_secret(
    server: Counted, key: Key, caplog: pytest.LogCaptureFixture
) -> None:
    record, _ = key
    secret = "wfas_this-is-not-the-secret"
    auth = WfaKeyAuth(record.key_id, secret)
    caplog.set_level(logging.DEBUG)
    async with async_client(server, auth) as client:
        with pytest.raises(TokenExchangeError) as refused:
            await client.get("/whoami")
    assert refused.value.response.status_code == 401
    assert "invalid_credentials" in str(refused.value)
    assert record.key_id in str(refused.value)
    assert server.count("/whoami") == 0
    for text in (str(refused.value), repr(refused.value), repr(auth), caplog.text):
        assert secret not in text


def test_the_repr_names_the_key_and_never_the_secret_or_token() -> None:
    auth = WfaKeyAuth("wfak_example", "wfas_secret-value", token_url="https://api.example/t")
    assert repr(auth) == "WfaKeyAuth(key_id='wfak_example', token_url='https://api.example/t')"


async def test_an_absolute_token_url_is_used_as_given(
    middleware: ApiKeyAuthMiddleware, key: Key
) -> None:
    # Mounted under /api, the token endpoint is not where the default token_url points.
    server = Counted(Starlette(routes=[Mount("/api", app=middleware)]))
    record, secret = key
    token_url = "http://testserver/api/v1/auth/api-key/token"
    async with async_client(server, WfaKeyAuth(record.key_id, secret, token_url=token_url)) as c:
        response = await c.get("/api/whoami")
    assert response.status_code == 200
    assert server.count("/api/v1/auth/api-key/token") == 1
    assert server.count(TOKEN_PATH) == 0


def test_a_sync_client_reuses_and_renews_its_token_over_real_http(
    store: CountingStore, verifier: CountingVerifier, key: Key
) -> None:
    tokens = MemoryTokenStore()
    middleware = ApiKeyAuthMiddleware(
        inner_app(), store=store, verifier=verifier, token_store=tokens
    )
    server = Counted(middleware)
    record, secret = key
    auth = WfaKeyAuth(record.key_id, secret)
    with serving(server) as base_url, httpx.Client(base_url=base_url, auth=auth) as client:
        first = [client.get("/whoami").status_code for _ in range(3)]
        tokens.tokens.clear()
        middleware.all_keys_changed()
        after_revocation = client.get("/whoami")
    assert first == [200] * 3
    assert after_revocation.status_code == 200
    assert server.count(TOKEN_PATH) == 2


def test_threads_sharing_a_sync_client_share_one_exchange(server: Counted, key: Key) -> None:
    record, secret = key
    statuses: list[int] = []
    auth = WfaKeyAuth(record.key_id, secret)
    with serving(server) as base_url, httpx.Client(base_url=base_url, auth=auth) as client:

        def call() -> None:
            statuses.append(client.get("/whoami").status_code)

        threads = [threading.Thread(target=call) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert statuses == [200] * 6
    assert server.count(TOKEN_PATH) == 1
