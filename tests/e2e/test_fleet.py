"""Several real ``wfa-keys serve`` processes on one database: revocation reaches all of them.

Each change is made on process A (GraphQL) or from the command line; process B, which had
the key's record and verified secret cached, must refuse the old credentials soon after.
The record cache trusts records for 60 s while the change feed is up, so only the feed can
make B refuse in time. Polling is bounded: 50 ms steps, failing at 3 s (the promise is 1 s,
measured by ``bench/revocation.py``).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from tortoise.context import TortoiseContext

from support.serving import WFA_KEYS, Server, server_env, start_server
from wfa_auth import generate_key_secret
from wfa_keys.app import create_app
from wfa_keys.settings import Settings

pytestmark = pytest.mark.e2e

EMAIL = "owner@acme.example"
PASSWORD = "a long bootstrap password"
ORGANIZATION = "Default organization"
ENV = {"WFA_BOOTSTRAP_ADMIN_EMAIL": EMAIL, "WFA_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD}
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { email } }"
CREATE = """mutation($n: String!) { createApiKey(input: {name: $n}) {
  keySecret apiKey { id } } }"""
DISABLE = "mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: false) { id } }"
REGENERATE = "mutation($id: ID!) { regenerateApiKey(id: $id) { keySecret } }"
DELETE = "mutation($id: ID!) { deleteApiKey(id: $id) { id } }"
STEP = 0.05
#: 401 for a disabled, deleted or regenerated key; 403 without the subscription; 429 once
#: the refusals of the old secret reach the failure throttle (they count as failures).
REFUSED = {401, 403, 429}
GIVE_UP = 3.0


async def graphql(c: httpx2.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await c.post("/graphql", json={"query": query, "variables": variables})
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


class Credentials:
    """One key's three ways in: Basic, the two headers, and a Bearer token from B."""

    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id, self.secret = key_id, secret
        self.token = ""

    def forms(self) -> dict[str, dict[str, str]]:
        basic = base64.b64encode(f"{self.key_id}:{self.secret}".encode()).decode()
        return {
            "basic": {"Authorization": f"Basic {basic}"},
            "headers": {"X-API-Key-ID": self.key_id, "X-API-Key-Secret": self.secret},
            "bearer": {"Authorization": f"Bearer {self.token}"},
        }


async def whoami_status(server: Server, headers: dict[str, str]) -> int:
    # A new connection each time, so that with --workers every worker can answer.
    async with httpx2.AsyncClient(base_url=server.base_url, trust_env=False) as c:
        response = await c.get("/api/v1/whoami", headers=headers)
    return response.status_code


async def warm(server: Server, creds: Credentials) -> None:
    """Get a token from ``server`` and have every worker cache each form (200 each)."""
    async with httpx2.AsyncClient(base_url=server.base_url, trust_env=False) as c:
        response = await c.post(
            "/api/v1/auth/api-key/token", json={"key_id": creds.key_id, "key_secret": creds.secret}
        )
    creds.token = response.json()["access_token"]
    for headers in creds.forms().values():
        for _ in range(4):
            assert await whoami_status(server, headers) == 200


async def refused_within(server: Server, creds: Credentials) -> float:
    """Seconds until every form of ``creds`` is refused by ``server`` (fails at 3 s)."""
    started = time.monotonic()
    pending = creds.forms()
    for _ in range(int(GIVE_UP / STEP)):
        if time.monotonic() - started > GIVE_UP:
            break
        for name, headers in list(pending.items()):
            # Four new connections: with --workers, the kernel spreads them over the
            # workers, and each must refuse.
            statuses = {await whoami_status(server, headers) for _ in range(4)}
            if statuses <= REFUSED:
                del pending[name]
        if not pending:
            return time.monotonic() - started
        await asyncio.sleep(STEP)
    pytest.fail(f"still accepted after {GIVE_UP} s: {sorted(pending)}")


async def run_revocations(a: Server, b: Server, database_url: str) -> list[float]:
    """Disable, regenerate, delete on A and turn the subscription off from the CLI; B refuses."""
    async with httpx2.AsyncClient(base_url=a.base_url, trust_env=False, timeout=30) as admin:
        await graphql(admin, LOGIN, e=EMAIL, p=PASSWORD)
        keys = []
        for name in ("disable", "regenerate", "delete", "subscription"):
            created = (await graphql(admin, CREATE, n=name))["createApiKey"]
            keys.append(Credentials(created["apiKey"]["id"], created["keySecret"]))
        for creds in keys:
            await warm(b, creds)

        async def cli_subscription_off() -> None:
            process = await asyncio.create_subprocess_exec(
                str(WFA_KEYS),
                "set-subscription",
                "--organization",
                ORGANIZATION,
                "--workflow-automation",
                "off",
                "--database-url",
                database_url,
                env=server_env(),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            _out, err = await asyncio.wait_for(process.communicate(), timeout=60)
            assert process.returncode == 0, err

        changes: list[Callable[[Credentials], Awaitable[object]]] = [
            lambda k: graphql(admin, DISABLE, id=k.key_id),
            lambda k: graphql(admin, REGENERATE, id=k.key_id),
            lambda k: graphql(admin, DELETE, id=k.key_id),
            lambda _k: cli_subscription_off(),
        ]
        latencies = []
        for creds, change in zip(keys, changes, strict=True):
            await change(creds)
            latencies.append(await refused_within(b, creds))
    return latencies


@pytest.fixture
def two_servers(
    db: TortoiseContext, tmp_path: Path, e2e_database_url: str, servers: list[Server]
) -> tuple[Server, Server]:
    """Processes A and B of ``wfa-keys serve`` on one database (stopped at the end)."""
    del db  # requested so that the test database is emptied first
    for _ in range(2):
        servers.append(start_server(tmp_path, e2e_database_url, env=ENV))
    return servers[-2], servers[-1]


async def test_changes_on_one_process_are_refused_by_another_within_a_second(
    two_servers: tuple[Server, Server], e2e_database_url: str
) -> None:
    a, b = two_servers

    latencies = await run_revocations(a, b, e2e_database_url)

    assert len(latencies) == 4
    assert "following key changes" in b.stderr


async def test_changes_reach_every_worker_and_the_metrics_count_them(
    db: TortoiseContext, tmp_path: Path, e2e_database_url: str, servers: list[Server]
) -> None:
    server = start_server(
        tmp_path, e2e_database_url, "--workers", "2", env=ENV | {"WFA_METRICS": "on"}
    )
    servers.append(server)
    async with httpx2.AsyncClient(base_url=server.base_url, trust_env=False) as c:
        before = (await c.get("/metrics")).text

    await run_revocations(server, server, e2e_database_url)

    async with httpx2.AsyncClient(base_url=server.base_url, trust_env=False) as c:
        after = await c.get("/metrics")
    assert after.status_code == 200
    assert after.headers["content-type"].startswith("text/plain")
    samples = parse_samples(after.text)
    assert parse_samples(before).get(CREATE_SAMPLE, 0) == 0
    # Both workers' counts are added up, whichever worker answered the scrape.
    assert samples[CREATE_SAMPLE] == 4
    assert samples['wfa_keys_graphql_operations_total{field="login",type="mutation"}'] == 1
    # Each of the 4 changes reached both workers (and the CLI's through the feed too).
    received = sum(v for k, v in samples.items() if k.startswith("wfa_keys_key_changes_received"))
    assert received >= 8


CREATE_SAMPLE = 'wfa_keys_graphql_operations_total{field="createApiKey",type="mutation"}'


def parse_samples(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_metrics_are_off_unless_asked_for() -> None:
    # Not a server start of its own: the route tables of the two apps.
    def paths(settings: Settings) -> set[str]:
        return {getattr(route, "path", "") for route in create_app(settings).routes}

    assert "/metrics" not in paths(Settings())
    assert "/metrics" in paths(Settings(metrics=True))


ENABLE = "mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: true) { id } }"
#: The middleware's default: failed attempts per Key ID and client address in the window.
FAILURES_PER_KEY_AND_IP = 10


async def test_wrong_secrets_spread_over_two_processes_share_one_limit(
    two_servers: tuple[Server, Server],
) -> None:
    a, b = two_servers
    async with httpx2.AsyncClient(base_url=a.base_url, trust_env=False, timeout=30) as admin:
        await graphql(admin, LOGIN, e=EMAIL, p=PASSWORD)
        created = (await graphql(admin, CREATE, n="guessed"))["createApiKey"]
    key_id = created["apiKey"]["id"]
    wrong = Credentials(key_id, _other_valid_secret(created["keySecret"]))
    right = Credentials(key_id, created["keySecret"])

    # Concurrently, half on each process: the shared store admits exactly the limit.
    statuses = await asyncio.gather(
        *(
            whoami_status(server, wrong.forms()["basic"])
            for server in [a, b] * FAILURES_PER_KEY_AND_IP
        )
    )

    assert statuses.count(401) == statuses.count(429) == FAILURES_PER_KEY_AND_IP
    # Throttled on both processes now, the right secret included (from this address).
    assert await whoami_status(a, right.forms()["basic"]) == 429
    assert await whoami_status(b, right.forms()["basic"]) == 429


def _other_valid_secret(secret: str) -> str:
    """A well-formed Key Secret (right prefix and checksum) that is not ``secret``."""
    other = generate_key_secret()
    return other if other != secret else generate_key_secret()


async def test_tokens_revoked_on_one_process_do_not_come_back_on_another(
    two_servers: tuple[Server, Server],
) -> None:
    a, b = two_servers
    async with httpx2.AsyncClient(base_url=a.base_url, trust_env=False, timeout=30) as admin:
        await graphql(admin, LOGIN, e=EMAIL, p=PASSWORD)
        created = (await graphql(admin, CREATE, n="suspended?"))["createApiKey"]
        creds = Credentials(created["apiKey"]["id"], created["keySecret"])
        await warm(b, creds)
        old_token = {"Authorization": f"Bearer {creds.token}"}

        await graphql(admin, DISABLE, id=creds.key_id)
        await refused_within(b, creds)
        await graphql(admin, ENABLE, id=creds.key_id)

        # The secret works again on B once the change arrives; the old token never does.
        for _ in range(int(GIVE_UP / STEP)):
            if await whoami_status(b, creds.forms()["basic"]) == 200:
                break
            await asyncio.sleep(STEP)
        assert await whoami_status(b, creds.forms()["basic"]) == 200
        assert {await whoami_status(server, old_token) for server in (a, b)} == {401}
