"""``wfa_auth.remote.RemoteAuthority`` against the real service app, in process.

The service (``create_api`` on the test database) answers the verification calls through
``httpx.ASGITransport``, counted; the change stream needs a real server and is tested end to
end (tests/e2e/test_remote_verification.py).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Security
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from tortoise.context import TortoiseContext

import wfa_auth.remote
from support.clock import MonotonicClock
from support.service_keys import SETTINGS, make_key
from support.serving import free_port
from wfa_auth import SCOPE_KEY, ApiKeyAuthMiddleware, KeyRecord, requires_scope
from wfa_auth.fastapi import ApiKeySecurity
from wfa_auth.remote import RemoteAuthority
from wfa_keys.api import create_api
from wfa_keys.models import ApiKey


class CountingTransport(httpx.AsyncBaseTransport):
    """The service app over ASGI, counting the calls that reach it."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return await self.inner.handle_async_request(request)


@requires_scope("workflows:read")
async def workflows(request: Request) -> JSONResponse:
    key: KeyRecord = request.scope[SCOPE_KEY]
    return JSONResponse({"key_id": key.key_id, "scopes": list(request.auth.scopes)})


def basic(key_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


class Remote:
    """A remote app (Starlette, the middleware with a RemoteAuthority) and its service."""

    def __init__(self, authority: RemoteAuthority, transport: CountingTransport) -> None:
        self.authority = authority
        self.service = transport
        app = ApiKeyAuthMiddleware(
            Starlette(routes=[Route("/workflows", workflows)]), authority=authority
        )
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.1.2.3", 5555)),
            base_url="http://remote",
        )

    async def get(self, headers: dict[str, str]) -> httpx.Response:
        return await self.client.get("/workflows", headers=headers)


@pytest.fixture
def timer() -> MonotonicClock:
    return MonotonicClock()


@pytest.fixture
async def remote(db: TortoiseContext, timer: MonotonicClock) -> AsyncIterator[Remote]:
    service = create_api(SETTINGS)
    transport = CountingTransport(Starlette(routes=[Mount("/api", app=service)]))
    caller, caller_secret = await make_key(scopes=["keys:verify"])
    authority = RemoteAuthority(
        "http://service",
        key_id=caller.key_id,
        key_secret=caller_secret,
        transport=transport,
        timer=timer,
    )
    remote = Remote(authority, transport)
    yield remote
    await remote.client.aclose()
    await service.flush_usage()


async def test_a_warm_request_makes_no_network_call(remote: Remote) -> None:
    key, secret = await make_key()
    first = await remote.get(basic(key.key_id, secret))
    calls = remote.service.calls
    warm = [await remote.get(basic(key.key_id, secret)) for _ in range(5)]
    assert first.status_code == 200
    assert first.json() == {
        "key_id": key.key_id,
        "scopes": ["authenticated", "workflows:read", "workflows:write"],
    }
    assert [r.status_code for r in warm] == [200] * 5
    assert remote.service.calls == calls == 1


async def test_the_cache_holds_keyed_digests_never_the_secret(remote: Remote) -> None:
    key, secret = await make_key()
    await remote.get(basic(key.key_id, secret))
    await remote.get({"X-API-Key-ID": key.key_id, "X-API-Key-Secret": secret})
    memo = remote.authority._warm
    assert memo
    assert all(isinstance(k, bytes) and len(k) == 32 for k in memo)
    assert secret not in repr(memo)
    assert secret.encode() not in b"".join(memo)
    assert "***" in repr(remote.authority)


async def test_while_the_stream_is_down_nothing_is_trusted_past_a_second(
    remote: Remote, timer: MonotonicClock
) -> None:
    key, secret = await make_key()
    await remote.get(basic(key.key_id, secret))
    timer.advance(0.9)
    await remote.get(basic(key.key_id, secret))
    assert remote.service.calls == 1
    timer.advance(0.2)
    await remote.get(basic(key.key_id, secret))
    assert remote.service.calls == 2


async def test_with_the_stream_up_a_verification_holds_for_the_cache_ttl(
    remote: Remote, timer: MonotonicClock
) -> None:
    key, secret = await make_key()
    remote.authority.stream_healthy = True
    remote.authority._last_heard = timer()
    await remote.get(basic(key.key_id, secret))
    timer.advance(3)  # the service's records hold 5 s here (60 s with its change listener)
    remote.authority._last_heard = timer()
    await remote.get(basic(key.key_id, secret))
    assert remote.service.calls == 1
    # A change event for the key drops it at once.
    await remote.authority.key_changed(key.key_id)
    await remote.get(basic(key.key_id, secret))
    assert remote.service.calls == 2
    # A silent stream is a dead one.
    timer.advance(wfa_auth.remote.SILENCE_SECONDS + 1)
    await remote.get(basic(key.key_id, secret))
    assert remote.service.calls == 3


async def test_failures_are_never_cached_and_keep_their_codes(remote: Remote) -> None:
    key, secret = await make_key(scopes=["workflows:write"])
    other, other_secret = await make_key("Globex")
    fenced, fenced_secret = await make_key(allowed_cidrs=["192.0.2.0/24"])
    no_scope = await remote.get(basic(key.key_id, secret))
    foreign = await remote.get(basic(other.key_id, other_secret))
    outside = await remote.get(basic(fenced.key_id, fenced_secret))
    bad_token = await remote.get({"Authorization": "Bearer nope"})
    assert (no_scope.status_code, no_scope.json()["error"]) == (403, "insufficient_scope")
    assert (foreign.status_code, foreign.json()["error"]) == (401, "invalid_credentials")
    assert (outside.status_code, outside.json()["error"]) == (403, "ip_not_allowed")
    assert (bad_token.status_code, bad_token.json()["error"]) == (401, "invalid_token")
    calls = remote.service.calls
    await remote.get(basic(other.key_id, other_secret))
    assert remote.service.calls == calls + 1


async def test_an_unreachable_service_is_a_503_with_retry_after_never_a_pass(
    db: TortoiseContext,
) -> None:
    key, secret = await make_key()
    authority = RemoteAuthority(
        f"http://127.0.0.1:{free_port()}", key_id="wfak_x", key_secret="wfas_y", timeout=2
    )
    app = ApiKeyAuthMiddleware(
        Starlette(routes=[Route("/workflows", workflows)]), authority=authority
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://remote"
    ) as client:
        response = await client.get("/workflows", headers=basic(key.key_id, secret))
    assert response.status_code == 503
    assert response.json()["error"] == "service_unavailable"
    assert response.headers["retry-after"] == "5"


async def test_the_fastapi_dependency_verifies_through_the_service(remote: Remote) -> None:
    auth = ApiKeySecurity(authority=remote.authority)
    app = FastAPI(lifespan=auth.lifespan)

    # A default rather than Annotated: the annotations are strings here, and ``auth`` local.
    @app.get("/whoami")
    async def whoami(
        key: KeyRecord = Security(auth, scopes=["workflows:read"]),  # noqa: B008
    ) -> dict[str, str]:
        return {"key_id": key.key_id}

    reader, reader_secret = await make_key()
    writer, writer_secret = await make_key(scopes=["workflows:write"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://remote"
    ) as client:
        allowed = await client.get("/whoami", headers=basic(reader.key_id, reader_secret))
        refused = await client.get("/whoami", headers=basic(writer.key_id, writer_secret))
    assert allowed.json() == {"key_id": reader.key_id}
    assert refused.status_code == 403
    assert refused.json()["detail"]["error"] == "insufficient_scope"


def test_the_middleware_takes_a_store_or_an_authority() -> None:
    authority = RemoteAuthority("http://service", key_id="wfak_x", key_secret="wfas_y")
    with pytest.raises(TypeError):
        ApiKeyAuthMiddleware(Starlette(), authority=authority, store=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ApiKeyAuthMiddleware(Starlette())


def test_the_remote_module_exports_are_pinned() -> None:
    assert sorted(wfa_auth.remote.__all__) == [
        "RemoteAuthority",
        "RemoteKeyRecord",
        "SILENCE_SECONDS",
    ]


async def test_a_limited_keys_calls_are_each_verified_and_refused_as_locally(
    remote: Remote,
) -> None:
    rated, secret = await make_key(scopes=["workflows:read"])
    await ApiKey.filter(key_id=rated.key_id).update(
        rate_limit_requests=2, rate_limit_per_seconds=3600
    )
    calls = remote.service.calls

    answers = [await remote.get(basic(rated.key_id, secret)) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["error"] == "rate_limited"
    assert int(answers[2].headers["retry-after"]) > 0
    # Never cached (cache_ttl 0): each call went to the service, to be limited and counted.
    assert remote.service.calls == calls + 3
