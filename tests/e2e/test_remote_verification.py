"""Issue 19 end to end: a real ``wfa-keys serve`` and ``uvicorn examples.remote_app:app``.

The remote app verifies keys through the service's verify endpoint and follows its change
stream. Bounded polls (50 ms steps, failing at 3 s) check changes made in the service are
honoured by the remote app; the promise is 1 s, which ``bench/remote.py`` measures.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from tortoise.context import TortoiseContext
from tortoise.transactions import in_transaction

from support.remote_app import RemoteApp, start_remote_app
from support.service_console import (
    DELETE,
    EMAIL,
    ENABLE,
    ENV,
    LOGIN,
    PASSWORD,
    REGENERATE,
    UPDATE,
    Console,
    basic,
)
from support.serving import Server, start_server
from support.tcp_proxy import TcpProxy
from wfa_auth import CALL_OUTCOMES, Argon2Verifier, generate_key_id, generate_key_secret
from wfa_keys.changes import publish_key_change
from wfa_keys.db import database
from wfa_keys.models import ApiKey, Organization, Role, User
from wfa_keys.usage import Granularity, key_usage, usage_range

pytestmark = pytest.mark.e2e

VERIFY = "/api/v1/keys/verify"
STEP = 0.05
GIVE_UP = 3.0


@pytest.fixture
async def console(
    db: TortoiseContext, tmp_path: Path, e2e_database_url: str, servers: list[Server]
) -> AsyncIterator[Console]:
    server = start_server(tmp_path, e2e_database_url, env=ENV)
    servers.append(server)
    admin = Console(server.base_url)
    await admin.graphql(LOGIN, e=EMAIL, p=PASSWORD)
    admin.server = server  # type: ignore[attr-defined]
    yield admin
    await admin.http.aclose()


@pytest.fixture
def remote_apps() -> AsyncIterator[list[RemoteApp]] | Any:
    started: list[RemoteApp] = []
    yield started
    for app in started:
        app.stop()


async def call(app: RemoteApp, path: str, headers: dict[str, str]) -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=app.base_url, trust_env=False, timeout=30) as c:
        return await c.get(path, headers=headers)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GIVE_UP
    while not await check():
        if loop.time() > deadline:
            pytest.fail(f"not within {GIVE_UP} s: {what}")
        await asyncio.sleep(STEP)


def answers(
    app: RemoteApp, path: str, headers: dict[str, str], status: int, error: str | None = None
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        response = await call(app, path, headers)
        if response.status_code != status:
            return False
        return error is None or response.json().get("error") == error

    return check


async def _remote(
    console: Console, tmp_path: Path, remote_apps: list[RemoteApp], url: str | None = None
) -> RemoteApp:
    verifier_id, verifier_secret = await console.create(scopes=["keys:verify"])
    service_url = url or console.http.base_url
    app = start_remote_app(tmp_path, str(service_url).rstrip("/"), verifier_id, verifier_secret)
    remote_apps.append(app)
    return app


def _verify_calls(server: Server) -> int:
    """How many verification calls the service has logged."""
    return server.stderr.count('"route":"/api/v1/keys/verify"')


async def _other_organization_key(database_url: str) -> tuple[str, str]:
    """A key of another organization (with every scope), written as the service writes one."""
    secret = generate_key_secret()
    async with database(database_url, migrate=False), in_transaction():
        org = await Organization.create(name="Globex", has_workflow_automation=True)
        owner = await User.create(
            email="boss@globex.example", password_hash="unused", role=Role.ADMIN, organization=org
        )
        key = await ApiKey.create(
            key_id=generate_key_id(),
            name="globex",
            secret_hash=Argon2Verifier(time_cost=1, memory_cost_kib=8, parallelism=1).hash(secret),
            owner=owner,
            organization=org,
            scopes=["workflows:read", "workflows:write", "keys:verify"],
            allowed_cidrs=[],
        )
    return key.key_id, secret


async def test_every_code_of_the_verify_endpoint_from_a_real_service(
    console: Console, e2e_database_url: str
) -> None:
    verifier = basic(*await console.create(scopes=["keys:verify"]))
    good = await console.create()
    disabled = await console.create()
    await console.graphql(ENABLE, id=disabled[0], on=False)
    expired = await console.create()
    async with database(e2e_database_url, migrate=False), in_transaction():
        await ApiKey.filter(key_id=expired[0]).update(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)
        )
        await publish_key_change(expired[0])
    fenced = await console.create(allowedCidrs=["10.0.0.0/8"])
    reader = await console.create(scopes=["workflows:read"])
    throttled = await console.create()
    other = await _other_organization_key(e2e_database_url)

    async def code(**body: Any) -> str:
        response = await console.http.post(VERIFY, headers=verifier, json=body)
        assert response.status_code == 200, response.text
        value: str = response.json()["code"]
        return value

    def creds(key: tuple[str, str]) -> dict[str, str]:
        return {"key_id": key[0], "key_secret": key[1]}

    assert await code(**creds(good), client_ip="192.0.2.1") == "VALID"
    assert await code(token=await console.token(*good)) == "VALID"
    assert await code(key_id=good[0], key_secret=generate_key_secret()) == "INVALID_CREDENTIALS"
    assert await code(**creds(other)) == "INVALID_CREDENTIALS"
    assert await code(**creds(disabled)) == "DISABLED"
    await eventually(lambda: _is(code(**creds(expired)), "EXPIRED"), "the expiry is seen")
    assert await code(**creds(fenced), client_ip="192.0.2.1") == "IP_NOT_ALLOWED"
    assert await code(**creds(fenced), client_ip="10.9.8.7") == "VALID"
    assert await code(**creds(reader), required_scopes=["workflows:write"]) == "INSUFFICIENT_SCOPE"
    for _ in range(10):
        await code(key_id=throttled[0], key_secret=generate_key_secret(), client_ip="192.0.2.9")
    assert await code(**creds(throttled), client_ip="192.0.2.9") == "THROTTLED"
    malformed = await console.http.post(VERIFY, headers=verifier, json={"key_id": good[0]})
    assert (malformed.status_code, malformed.json()["error"]) == (400, "invalid_request")


async def _is(answer: Awaitable[str], expected: str) -> bool:
    return await answer == expected


async def test_the_remote_app_accepts_every_credential_form_and_honours_scopes_and_lists(
    console: Console, tmp_path: Path, e2e_database_url: str, remote_apps: list[RemoteApp]
) -> None:
    app = await _remote(console, tmp_path, remote_apps)
    key_id, secret = await console.create()
    reader = await console.create(scopes=[])
    fenced = await console.create(allowedCidrs=["10.0.0.0/8"])
    other = await _other_organization_key(e2e_database_url)
    token = await console.token(key_id, secret)
    headers = {"X-API-Key-ID": key_id, "X-API-Key-Secret": secret}

    with_basic = await call(app, "/whoami", basic(key_id, secret))
    with_headers = await call(app, "/whoami", headers)
    with_token = await call(app, "/whoami", {"Authorization": f"Bearer {token}"})
    warm = await call(app, "/workflows", basic(key_id, secret))
    no_scope = await call(app, "/workflows", basic(*reader))
    anonymous = await call(app, "/whoami", {})
    wrong = await call(app, "/whoami", basic(key_id, generate_key_secret()))
    bad_token = await call(app, "/whoami", {"Authorization": "Bearer not-a-token"})
    outside = await call(app, "/whoami", basic(*fenced))
    foreign = await call(app, "/whoami", basic(*other))

    expected = {"key_id": key_id, "scopes": ["workflows:read", "workflows:write"]}
    assert with_basic.status_code == 200
    assert with_basic.json() == expected
    assert with_headers.json() == expected
    assert with_token.json() == expected
    assert warm.status_code == 200
    assert (no_scope.status_code, no_scope.json()["error"]) == (403, "insufficient_scope")
    assert no_scope.json()["scope"] == "workflows:read"
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "missing_credentials")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_credentials")
    assert (bad_token.status_code, bad_token.json()["error"]) == (401, "invalid_token")
    assert (outside.status_code, outside.json()["error"]) == (403, "ip_not_allowed")
    assert (foreign.status_code, foreign.json()["error"]) == (401, "invalid_credentials")
    # A key used only through the remote app has its last use, with the caller's address
    # (written when its minute ends, or, as here, when the service stops).
    console.server.stop()  # type: ignore[attr-defined]
    async with database(e2e_database_url, migrate=False):
        used = await ApiKey.get(key_id=key_id)
    assert used.last_used_at is not None
    assert used.last_used_ip == "127.0.0.1"


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_changes_in_the_service_are_refused_by_the_remote_app_within_a_second(
    db: TortoiseContext,
    tmp_path: Path,
    e2e_database_url: str,
    servers: list[Server],
    remote_apps: list[RemoteApp],
    workers: str,
) -> None:
    server = start_server(tmp_path, e2e_database_url, "--workers", workers, env=ENV)
    servers.append(server)
    console = Console(server.base_url)
    await console.graphql(LOGIN, e=EMAIL, p=PASSWORD)
    app = await _remote(console, tmp_path, remote_apps)
    disabled, regenerated, deleted, narrowed = [await console.create() for _ in range(4)]
    token = await console.token(*disabled)
    for key in (disabled, regenerated, deleted, narrowed):
        for _ in range(2):  # the second one is warm
            assert (await call(app, "/workflows", basic(*key))).status_code == 200
    assert (await call(app, "/whoami", {"Authorization": f"Bearer {token}"})).status_code == 200

    # With the stream up, warm keys are trusted past the 1 s a dead stream allows: no more
    # verification calls reach the service (so the refusals below come from the stream).
    # (The service writes its log lines off the request's path: counted once they are out.)
    await asyncio.sleep(1.5)
    verified = _verify_calls(server)
    for key in (disabled, regenerated, deleted, narrowed):
        assert (await call(app, "/workflows", basic(*key))).status_code == 200
    await asyncio.sleep(0.5)
    assert _verify_calls(server) == verified

    await console.graphql(ENABLE, id=disabled[0], on=False)
    await eventually(
        answers(app, "/whoami", basic(*disabled), 401, "key_disabled"), "disable is honoured"
    )
    await eventually(
        answers(app, "/whoami", {"Authorization": f"Bearer {token}"}, 401, "invalid_token"),
        "the disabled key's token is refused",
    )
    new_secret = (await console.graphql(REGENERATE, id=regenerated[0]))["regenerateApiKey"]
    await eventually(
        answers(app, "/whoami", basic(*regenerated), 401, "invalid_credentials"),
        "the old secret is refused",
    )
    assert (await call(app, "/whoami", basic(regenerated[0], new_secret["keySecret"]))).is_success
    await console.graphql(DELETE, id=deleted[0])
    await eventually(answers(app, "/whoami", basic(*deleted), 401), "delete is honoured")
    await console.graphql(UPDATE, id=narrowed[0], input={"scopes": ["workflows:write"]})
    await eventually(
        answers(app, "/workflows", basic(*narrowed), 403, "insufficient_scope"),
        "the scope change is honoured",
    )
    await console.http.aclose()


async def test_the_stream_cut_and_the_service_stopped_fail_closed_and_recover(
    console: Console,
    tmp_path: Path,
    e2e_database_url: str,
    servers: list[Server],
    remote_apps: list[RemoteApp],
) -> None:
    service: Server = console.server  # type: ignore[attr-defined]
    host, port = service.base_url.removeprefix("http://").rsplit(":", 1)
    proxy = TcpProxy((host, int(port)))
    try:
        app = await _remote(console, tmp_path, remote_apps, f"http://127.0.0.1:{proxy.port}")
        key = await console.create()
        changed = await console.create()
        for _ in range(2):
            assert (await call(app, "/whoami", basic(*key))).status_code == 200
            assert (await call(app, "/whoami", basic(*changed))).status_code == 200

        # The stream's connection is killed: it reconnects and resumes, so a change made
        # right after is honoured as before.
        proxy.cut()
        await console.graphql(ENABLE, id=changed[0], on=False)
        await eventually(
            answers(app, "/whoami", basic(*changed), 401, "key_disabled"), "after a cut"
        )
        assert (await call(app, "/whoami", basic(*key))).status_code == 200

        # The service unreachable: nothing cached is trusted past a second, then 503.
        proxy.go_down()
        await eventually(answers(app, "/whoami", basic(*key), 503), "503 once unreachable")
        refused = await call(app, "/whoami", basic(*key))
        assert refused.json()["error"] == "service_unavailable"
        assert int(refused.headers["retry-after"]) > 0
        proxy.come_back()
        await eventually(answers(app, "/whoami", basic(*key), 200), "back with the service")

        # The service process stopped and started again (on another port, behind the proxy).
        service.stop()
        await eventually(answers(app, "/whoami", basic(*key), 503), "503 with the service down")
        restarted = start_server(tmp_path, e2e_database_url, env=ENV)
        servers.append(restarted)
        host, port = restarted.base_url.removeprefix("http://").rsplit(":", 1)
        proxy.target = (host, int(port))
        await eventually(answers(app, "/whoami", basic(*key), 200), "back after a restart")
        # And the stream is followed again: a change is honoured.
        again = Console(restarted.base_url)
        await again.graphql(LOGIN, e=EMAIL, p=PASSWORD)
        await again.graphql(ENABLE, id=key[0], on=False)
        await eventually(
            answers(app, "/whoami", basic(*key), 401, "key_disabled"), "after the restart"
        )
        await again.http.aclose()
    finally:
        proxy.close()
    assert "Traceback" not in app.log


async def test_remote_calls_are_counted_as_verifications_and_limited_keys_every_call(
    console: Console, tmp_path: Path, e2e_database_url: str, remote_apps: list[RemoteApp]
) -> None:
    app = await _remote(console, tmp_path, remote_apps)
    plain = await console.create()
    limited = await console.create(rateLimit={"requests": 2, "perSeconds": 3600})
    server: Server = console.server  # type: ignore[attr-defined]

    plain_calls = [await call(app, "/whoami", basic(*plain)) for _ in range(5)]
    wrong = await call(app, "/whoami", basic(plain[0], generate_key_secret()))
    limited_calls = [await call(app, "/whoami", basic(*limited)) for _ in range(3)]
    # Refused by the remote app's own route, which the service never hears of.
    reader = await console.create(scopes=[])
    no_scope = await call(app, "/workflows", basic(*reader))

    assert [r.status_code for r in plain_calls] == [200] * 5
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_credentials")
    assert [r.status_code for r in limited_calls] == [200, 200, 429]
    assert limited_calls[2].json()["error"] == "rate_limited"
    assert (no_scope.status_code, no_scope.json()["error"]) == (403, "insufficient_scope")
    assert int(limited_calls[2].headers["retry-after"]) > 0
    # Stopped before its 10-second flush: the counts are written at shutdown.
    server.stop()
    # A limited key is verified on every call (cache_ttl 0): each is limited and counted.
    # One verification for the plain key's five calls (the four warm ones made no network
    # call), one for the wrong secret, one for each of the limited key's calls and one for
    # the reader's.
    assert _verify_calls(server) == 1 + 1 + 3 + 1
    since = datetime.now(UTC) - timedelta(hours=1)
    async with database(e2e_database_url, migrate=False):
        admin = await User.get(email=EMAIL)
        starts = usage_range(since, None, Granularity.HOUR)
        usage = {
            key_id: [sum(bucket.counts[i] for bucket in buckets) for i in range(len(CALL_OUTCOMES))]
            for key_id in (plain[0], limited[0], reader[0])
            for buckets in [
                await key_usage(str(admin.organization_id), key_id, starts, Granularity.HOUR)
            ]
        }
    counted = {
        key_id: {outcome: n for outcome, n in zip(CALL_OUTCOMES, counts, strict=True) if n}
        for key_id, counts in usage.items()
    }
    assert counted[plain[0]] == {"success": 1, "invalid_secret": 1}
    assert counted[limited[0]] == {"success": 2, "rate_limited": 1}
    assert counted[reader[0]] == {"success": 1}
