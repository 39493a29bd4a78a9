"""The database goes away under a running server, and comes back.

A TCP proxy sits between ``wfa-keys serve`` and PostgreSQL, so the test can cut every
connection and refuse new ones, as a crashed or unreachable database server does. This test
needs the PostgreSQL that runs on every machine of the project, on both suite runs: in CI
(``CI`` set) or on a PostgreSQL run it fails when PostgreSQL is missing; elsewhere it skips,
so that the README's test command passes on a machine without PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
import httpx2
import pytest

from support.postgres import scratch_database
from support.serving import Server, start_server
from support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

EMAIL = "owner@acme.example"
PASSWORD = "a long bootstrap password"
# <name>_outage beside the suite's database (see support.postgres).
_ADMIN_URL, OUTAGE_DATABASE = scratch_database("outage")
RECOVERY_ATTEMPTS = 100  # x 0.2 s


def _postgres() -> tuple[str, int, str]:
    parts = urlsplit(_ADMIN_URL)
    return parts.hostname or "127.0.0.1", parts.port or 5432, parts.username or "postgres"


@pytest.fixture
async def outage_database() -> AsyncIterator[tuple[str, int, str]]:
    host, port, user = _postgres()
    try:
        admin = await asyncpg.connect(host=host, port=port, user=user, database="postgres")
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI") or os.environ.get("WFA_TEST_DATABASE_URL"):
            pytest.fail(f"this test needs PostgreSQL at {host}:{port}: {type(exc).__name__}")
        # Outside CI, a machine without PostgreSQL still passes the README's test command.
        pytest.skip(f"no PostgreSQL at {host}:{port} (CI fails here instead of skipping)")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{OUTAGE_DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{OUTAGE_DATABASE}"')
        yield host, port, user
        await admin.execute(f'DROP DATABASE IF EXISTS "{OUTAGE_DATABASE}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def proxy(outage_database: tuple[str, int, str]) -> Iterator[TcpProxy]:
    host, port, _ = outage_database
    tcp = TcpProxy((host, port))
    yield tcp
    tcp.close()


async def _graphql(c: httpx2.AsyncClient, query: str, **variables: Any) -> httpx2.Response:
    return await c.post("/graphql", json={"query": query, "variables": variables})


def _basic(key_id: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def _create_key(c: httpx2.AsyncClient, name: str) -> tuple[str, str]:
    response = await _graphql(
        c,
        "mutation($n: String!) { createApiKey(input: {name: $n}) { keySecret apiKey { id } } }",
        n=name,
    )
    created = response.json()["data"]["createApiKey"]
    return created["apiKey"]["id"], created["keySecret"]


async def test_database_outage_fails_closed_and_everything_recovers(
    tmp_path: Path, proxy: TcpProxy, outage_database: tuple[str, int, str], servers: list[Server]
) -> None:
    _, _, user = outage_database
    url = f"postgres://{user}@127.0.0.1:{proxy.port}/{OUTAGE_DATABASE}"
    env = {"WFA_BOOTSTRAP_ADMIN_EMAIL": EMAIL, "WFA_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD}
    server = start_server(tmp_path, url, env=env)
    servers.append(server)

    async with httpx2.AsyncClient(base_url=server.base_url, trust_env=False, timeout=30) as c:
        login = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { email } }"
        assert (await _graphql(c, login, e=EMAIL, p=PASSWORD)).status_code == 200
        used_id, used_secret = await _create_key(c, "used before the outage")
        cold_id, cold_secret = await _create_key(c, "first used during the outage")
        assert (
            await c.get("/api/v1/whoami", headers=_basic(used_id, used_secret))
        ).status_code == 200

        proxy.go_down()

        health = await c.get("/healthz")
        cold = await c.get("/api/v1/whoami", headers=_basic(cold_id, cold_secret))
        exchange = await c.post(
            "/api/v1/auth/api-key/token", json={"key_id": cold_id, "key_secret": cold_secret}
        )
        listing = await _graphql(c, "{ apiKeys { totalCount } }")

        assert health.status_code == 503
        # Fail closed: the key cannot be checked, so the call is neither let through nor
        # answered as if the key were wrong.
        assert cold.status_code == 503
        assert cold.headers["Retry-After"]
        assert cold.json()["error"] == "service_unavailable"
        assert exchange.status_code == 503
        if listing.status_code == 200:
            errors = listing.json()["errors"]
            assert [e["extensions"]["code"] for e in errors] == ["INTERNAL_SERVER_ERROR"]
            assert errors[0]["message"] == "Internal server error"
        else:
            assert listing.status_code == 503
        for response in (health, cold, exchange, listing):
            assert "asyncpg" not in response.text
            assert "Traceback" not in response.text

        proxy.come_back()

        for _ in range(RECOVERY_ATTEMPTS):
            if (await c.get("/healthz")).status_code == 200:
                break
            await asyncio.sleep(0.2)
        else:
            pytest.fail("/healthz did not recover")
        cold_after = await c.get("/api/v1/whoami", headers=_basic(cold_id, cold_secret))
        listing_after = await _graphql(c, "{ apiKeys { totalCount nodes { id } } }")
        third_id, third_secret = await _create_key(c, "created after the outage")

    assert cold_after.status_code == 200
    assert cold_after.json()["key_id"] == cold_id
    # Nothing was lost: the session and both keys made before the outage are still there.
    assert listing_after.status_code == 200
    ids = {node["id"] for node in listing_after.json()["data"]["apiKeys"]["nodes"]}
    assert ids == {used_id, cold_id}
    assert third_id.startswith("wfak_")
    assert third_secret.startswith("wfas_")
    for secret in (used_secret, cold_secret, third_secret, PASSWORD):
        assert secret not in server.stderr
        assert secret not in server.stdout
