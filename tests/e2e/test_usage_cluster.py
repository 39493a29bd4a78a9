"""Rate limits, quotas and call analytics across two real ``wfa-keys serve`` processes.

The processes count on their own and reconcile through the shared store (the database or
Redis, ``WFA_THROTTLE_STORE``): a limit of 100 per 10 s holds for 1,000 calls spread over
both, a quota of 1,000 a day is exact once they are idle, and counted calls survive a
SIGTERM. Load loops are bounded in count; waits are bounded in time.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from tortoise.context import TortoiseContext

from support.redis_server import REDIS_URL, redis_or_skip
from support.serving import Server, start_server

pytestmark = pytest.mark.e2e

EMAIL = "owner@acme.example"
PASSWORD = "a long bootstrap password"
ENV = {"WFA_BOOTSTRAP_ADMIN_EMAIL": EMAIL, "WFA_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD}
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { email } }"
CREATE = """mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) {
  keySecret apiKey { id } } }"""
QUOTA = "query($id: ID!) { apiKey(id: $id) { quota { used requests } } }"
USAGE = """query($id: ID!, $since: DateTime!) { apiKey(id: $id) {
  usage(since: $since) { total success rateLimited quotaExceeded } } }"""
CONCURRENCY = 16


async def graphql(c: httpx2.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await c.post("/graphql", json={"query": query, "variables": variables})
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def create_key(server: Server, **input: Any) -> tuple[str, str]:
    async with httpx2.AsyncClient(base_url=server.base_url, trust_env=False, timeout=30) as c:
        await graphql(c, LOGIN, e=EMAIL, p=PASSWORD)
        created = (await graphql(c, CREATE, input={"name": "Load", **input}))["createApiKey"]
    return created["apiKey"]["id"], created["keySecret"]


async def admin_query(server: Server, query: str, **variables: Any) -> dict[str, Any]:
    async with httpx2.AsyncClient(base_url=server.base_url, trust_env=False, timeout=30) as c:
        await graphql(c, LOGIN, e=EMAIL, p=PASSWORD)
        return await graphql(c, query, **variables)


def basic(key_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def spread(
    servers: tuple[Server, Server], headers: dict[str, str], calls: int
) -> list[tuple[float, float, httpx2.Response]]:
    """``calls`` calls of whoami alternating between the servers, 16 at a time after one
    to each; each answer with when its call was sent and when the answer arrived."""
    answers: list[tuple[float, float, httpx2.Response]] = []
    gate = asyncio.Semaphore(CONCURRENCY)
    async with (
        httpx2.AsyncClient(base_url=servers[0].base_url, trust_env=False, timeout=30) as one,
        httpx2.AsyncClient(base_url=servers[1].base_url, trust_env=False, timeout=30) as two,
    ):

        async def call(i: int) -> None:
            async with gate:
                sent = time.monotonic()
                response = await (one if i % 2 else two).get("/api/v1/whoami", headers=headers)
                answers.append((sent, time.monotonic(), response))

        # One call to each first: concurrent first calls would all verify the secret, and
        # more than ten at once trip the failure throttle (too_many_attempts).
        await call(0)
        await call(1)
        await asyncio.gather(*(call(i) for i in range(2, calls)))
    return answers


@pytest.fixture(params=["database", "redis"])
async def cluster(
    request: pytest.FixtureRequest,
    db: TortoiseContext,
    tmp_path: Path,
    e2e_database_url: str,
    servers: list[Server],
) -> AsyncIterator[tuple[Server, Server]]:
    """Two serve processes on one database, counting through the database or Redis.

    With Redis, the keys the servers wrote there (counters, known-good marks) are deleted
    once they have stopped (they give leases back as they stop): the suite leaves no key."""
    del db  # requested so that the test database is emptied first
    client = await redis_or_skip() if request.param == "redis" else None
    before: set[bytes] = set()
    if client is not None:
        before = {key async for key in client.scan_iter(match="wfa-keys:*")}
    env = ENV | {"WFA_THROTTLE_STORE": request.param if request.param == "database" else REDIS_URL}
    for _ in range(2):
        servers.append(start_server(tmp_path, e2e_database_url, env=env))
    yield servers[-2], servers[-1]
    if client is not None:
        for server in servers:
            server.stop()
        written = [key async for key in client.scan_iter(match="wfa-keys:*") if key not in before]
        if written:
            await client.delete(*written)
        await client.aclose()


async def test_a_rate_limit_holds_across_two_processes(cluster: tuple[Server, Server]) -> None:
    key_id, secret = await create_key(cluster[0], rateLimit={"requests": 100, "perSeconds": 10})

    answers = await spread(cluster, basic(key_id, secret), 1000)

    accepted = sorted((sent, got) for sent, got, r in answers if r.status_code == 200)
    refused = [r for _, _, r in answers if r.status_code != 200]
    assert {r.status_code for r in refused} == {429}
    assert {r.json()["error"] for r in refused} == {"rate_limited"}
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
    # A call was accepted between when it was sent and when its answer arrived: the calls
    # sent and answered inside one 10-second span were accepted inside it. At most 110.
    most = max(
        sum(1 for sent, got in accepted if start <= sent and got < start + 10)
        for start, _ in accepted
    )
    assert most <= 110
    # Nor was the limit starved: when every call was answered within 10 s of the first,
    # leases held by the processes cost at most 10 % of it.
    if max(got for _, got, _ in answers) - min(sent for sent, _, _ in answers) < 10:
        assert len(accepted) >= 90


async def test_a_daily_quota_is_exact_across_two_processes_once_idle(
    cluster: tuple[Server, Server],
) -> None:
    key_id, secret = await create_key(cluster[0], quota={"requests": 1000, "period": "DAY"})

    answers = await spread(cluster, basic(key_id, secret), 1100)

    accepted = sum(1 for _, _, r in answers if r.status_code == 200)
    exceeded = [r for _, _, r in answers if r.status_code == 429]
    assert 990 <= accepted <= 1000
    assert {r.json()["error"] for r in exceeded} == {"quota_exceeded"}
    assert accepted + len(exceeded) == 1100
    # Idle: each process gives back the units it leased and did not use within ~1 s.
    used = -1
    for _ in range(50):
        quota = (await admin_query(cluster[1], QUOTA, id=key_id))["apiKey"]["quota"]
        used = quota["used"]
        if used == accepted:
            break
        await asyncio.sleep(0.2)
    assert used == accepted


async def test_counted_calls_survive_a_sigterm_and_show_in_usage(
    cluster: tuple[Server, Server],
) -> None:
    a, b = cluster
    key_id, secret = await create_key(a, rateLimit={"requests": 3, "perSeconds": 3600})
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    async with httpx2.AsyncClient(base_url=b.base_url, trust_env=False) as c:
        statuses = [
            (await c.get("/api/v1/whoami", headers=basic(key_id, secret))).status_code
            for _ in range(5)
        ]
    assert statuses == [200, 200, 200, 429, 429]
    # Stopped before its 10-second flush: the counts are written at shutdown.
    b.stop()

    buckets = (await admin_query(a, USAGE, id=key_id, since=since))["apiKey"]["usage"]
    assert sum(bucket["success"] for bucket in buckets) == 3
    assert sum(bucket["rateLimited"] for bucket in buckets) == 2
    assert sum(bucket["total"] for bucket in buckets) == 5


async def test_calls_show_in_usage_within_ten_seconds(cluster: tuple[Server, Server]) -> None:
    a, b = cluster
    key_id, secret = await create_key(a)
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    async with httpx2.AsyncClient(base_url=b.base_url, trust_env=False) as c:
        for _ in range(4):
            assert (await c.get("/api/v1/whoami", headers=basic(key_id, secret))).is_success
    started = time.monotonic()
    total = 0
    while time.monotonic() - started < 15:
        buckets = (await admin_query(a, USAGE, id=key_id, since=since))["apiKey"]["usage"]
        total = sum(bucket["success"] for bucket in buckets)
        if total == 4:
            break
        await asyncio.sleep(0.5)
    assert total == 4
