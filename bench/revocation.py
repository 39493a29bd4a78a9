"""Revocation latency across processes: disable a key on server A, poll server B until refused.

Starts two real ``wfa-keys serve`` processes on one PostgreSQL database (dropped and created
afresh), signs in on A, and repeats ``--rounds`` times (30 by default): enable the key on A,
wait until B accepts it and has it cached (warm), then disable it on A and poll B every
5 ms until it refuses the key. The latency is from sending the disable mutation to sending
the first request B refuses (401, or 503 when B cannot reach the database); each round gives
up after 10 s.
Prints min/p50/p95/max in milliseconds.

With ``--fault freeze|blackhole|drop``, B reaches PostgreSQL through the fault proxy of
``tests/support/tcp_proxy.py``, and each round makes that fault just before the disable:
on B's change-feed connection only (``--scope listener``, the default: B's pool still works),
or on every connection of B's (``--scope all``). The fault ends after each round. The bound
the service promises is 2 s in every case (SECURITY.md).

    .venv/bin/python bench/revocation.py [--database wfa_deploy_bench] [--rounds 30]
        [--fault freeze|blackhole|drop] [--scope listener|all]

Uses only 127.0.0.1; the servers are stopped at the end whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.tcp_proxy import FAULTS, LISTENERS, TcpProxy

WFA_KEYS = Path(sys.executable).with_name("wfa-keys")
EMAIL = "bench@acme.example"
PASSWORD = "a long bench password"
GIVE_UP = 10.0
STEP = 0.005
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { email } }"
CREATE = 'mutation { createApiKey(input: {name: "bench"}) { keySecret apiKey { id } } }'
ENABLE = "mutation($id: ID!, $on: Boolean!) { setApiKeyEnabled(id: $id, enabled: $on) { id } }"


@contextmanager
def serve(database_url: str, workdir: Path, name: str) -> Iterator[str]:
    """A running ``wfa-keys serve`` on a free port; yields its base URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFA_")}
    env |= {
        "WFA_BOOTSTRAP_ADMIN_EMAIL": EMAIL,
        "WFA_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD,
        "WFA_LOG_LEVEL": "WARNING",
    }
    stdout = workdir / f"{name}.out"
    with stdout.open("wb") as out:
        process = subprocess.Popen(
            [str(WFA_KEYS), "serve", "--port", "0", "--database-url", database_url],
            stdout=out,
            stderr=subprocess.DEVNULL,
            env=env,
        )
    try:
        deadline = time.monotonic() + 30
        base_url = ""
        while time.monotonic() < deadline and process.poll() is None:
            found = re.search(r"Serving on (\S+)", stdout.read_text())
            if found:
                base_url = found.group(1)
                try:
                    if httpx2.get(f"{base_url}/healthz", trust_env=False).status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
            time.sleep(0.1)
        else:
            raise SystemExit(f"server {name} did not start")
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


async def recreate(database: str) -> None:
    connection = await asyncpg.connect(host="127.0.0.1", user="postgres", database="postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{database}"')
    finally:
        await connection.close()


async def gql(c: httpx2.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    body: dict[str, Any] = (
        await c.post("/graphql", json={"query": query, "variables": variables})
    ).json()
    if "errors" in body:
        raise SystemExit(f"GraphQL error: {body['errors']}")
    data: dict[str, Any] = body["data"]
    return data


async def until(
    c: httpx2.AsyncClient, headers: dict[str, str], accepted: bool
) -> tuple[int, float]:
    """Poll until B accepts (or refuses) the key: the status of that answer, and when
    (``time.perf_counter()``) the request that got it was sent."""
    deadline = time.monotonic() + GIVE_UP
    while time.monotonic() < deadline:
        sent = time.perf_counter()
        status = (await c.get("/api/v1/whoami", headers=headers)).status_code
        if (status == 200) == accepted:
            return status, sent
        await asyncio.sleep(STEP)
    raise SystemExit(f"B did not {'accept' if accepted else 'refuse'} the key within {GIVE_UP} s")


class Fault:
    """The fault each round makes on B's connections (none: ``kind`` is None)."""

    def __init__(self, proxy: TcpProxy | None, kind: str | None, scope: str) -> None:
        self.proxy, self.kind, self.only = proxy, kind, LISTENERS if scope == "listener" else None

    def start(self) -> None:
        if self.proxy is not None and self.kind is not None:
            self.proxy.fault(self.kind, only=self.only)

    def end(self) -> None:
        if self.proxy is not None:
            self.proxy.heal()


async def measure(a_url: str, b_url: str, rounds: int, fault: Fault) -> list[float]:
    async with (
        httpx2.AsyncClient(base_url=a_url, trust_env=False, timeout=30) as a,
        httpx2.AsyncClient(base_url=b_url, trust_env=False, timeout=30) as b,
    ):
        await gql(a, LOGIN, e=EMAIL, p=PASSWORD)
        created = (await gql(a, CREATE))["createApiKey"]
        key_id = created["apiKey"]["id"]
        basic = base64.b64encode(f"{key_id}:{created['keySecret']}".encode()).decode()
        headers = {"Authorization": f"Basic {basic}"}
        latencies = []
        refusals: dict[int, int] = {}
        for _ in range(rounds):
            await gql(a, ENABLE, id=key_id, on=True)
            await until(b, headers, accepted=True)
            await b.get("/api/v1/whoami", headers=headers)  # warm: cached record and secret
            fault.start()
            started = time.perf_counter()
            await gql(a, ENABLE, id=key_id, on=False)
            status, sent = await until(b, headers, accepted=False)
            # Until the first request that B refused was sent: every one before was accepted.
            # (Without the database, B's refusal is a 503 that may take WFA_REQUEST_TIMEOUT.)
            latencies.append((sent - started) * 1000)
            refusals[status] = refusals.get(status, 0) + 1
            fault.end()
        print("B's refusals by status:", dict(sorted(refusals.items())))
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="wfa_deploy_bench")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--fault", choices=FAULTS, help="a fault on B's database connections")
    parser.add_argument("--scope", choices=("listener", "all"), default="listener")
    args = parser.parse_args()
    rounds = max(1, min(args.rounds, 200))
    asyncio.run(recreate(args.database))
    url = f"postgres://postgres@127.0.0.1:5432/{args.database}"
    proxy = TcpProxy(("127.0.0.1", 5432)) if args.fault else None
    b_database = url.replace(":5432/", f":{proxy.port}/") if proxy is not None else url
    fault = Fault(proxy, args.fault, args.scope)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            with serve(url, workdir, "a") as a_url, serve(b_database, workdir, "b") as b_url:
                latencies = asyncio.run(measure(a_url, b_url, rounds, fault))
    finally:
        if proxy is not None:
            proxy.close()
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    what = f", fault {args.fault} on B's {args.scope} connections" if args.fault else ""
    print(f"revocation latency, disable on A -> refused by B{what}, {len(ordered)} rounds (ms):")
    print(
        f"  min {ordered[0]:.1f}  p50 {statistics.median(ordered):.1f}  "
        f"p95 {p95:.1f}  max {ordered[-1]:.1f}"
    )


if __name__ == "__main__":
    main()
