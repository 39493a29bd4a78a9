"""A legitimate client's latency while 20 addresses flood one server with wrong secrets.

Starts one real ``wfa-keys serve`` (SQLite file in a temporary directory), creates a key,
then runs two phases of ``--seconds`` each (10 by default) in one run:

1. quiet: a legitimate, warm client sends ``GET /api/v1/whoami`` with the right Basic
   credentials at ``--rate`` requests per second (200 by default, open loop: each request
   starts on schedule whatever the previous ones did);
2. flood: the same client, while a separate process sends wrong secrets for the same Key ID
   as fast as it can from ``--attackers`` loopback addresses (127.0.0.2, 127.0.0.3, ...: the
   client sockets are bound to them), ``--concurrency`` requests in flight per address.

Prints the legitimate client's p50 and p99 in each phase, their ratios, and what the
attackers got (status counts). The goal (issue 7): p99 <= 25 ms and p50 within 2x of the
quiet phase. Every loop is bounded in time and count; only 127.0.0.0/8 is used.

    .venv/bin/python bench/flood.py [--seconds 10] [--rate 200] [--attackers 20]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

from wfa_auth import generate_key_secret

WFA_KEYS = Path(sys.executable).with_name("wfa-keys")
EMAIL = "bench@acme.example"
PASSWORD = "a long bench password"
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { email } }"
CREATE = 'mutation { createApiKey(input: {name: "bench"}) { keySecret apiKey { id } } }'
MAX_REQUESTS_PER_ATTACKER = 1_000_000


def basic(key_id: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def attack(url: str, key_id: str, seconds: float, attackers: int, concurrency: int) -> None:
    """The flood: wrong secrets from ``attackers`` source addresses; prints status counts."""
    statuses: collections.Counter[int | str] = collections.Counter()
    deadline = time.monotonic() + seconds

    async def one_address(address: str) -> None:
        transport = httpx2.AsyncHTTPTransport(local_address=address)
        async with httpx2.AsyncClient(
            base_url=url, transport=transport, trust_env=False, timeout=10
        ) as c:

            async def worker() -> None:
                for _ in range(MAX_REQUESTS_PER_ATTACKER):
                    if time.monotonic() >= deadline:
                        return
                    headers = basic(key_id, generate_key_secret())
                    try:
                        statuses[(await c.get("/api/v1/whoami", headers=headers)).status_code] += 1
                    except httpx2.TransportError as exc:
                        statuses[type(exc).__name__] += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    await asyncio.gather(*(one_address(f"127.0.0.{2 + i}") for i in range(attackers)))
    print(json.dumps({str(k): v for k, v in statuses.items()}))


async def legitimate(url: str, headers: dict[str, str], seconds: float, rate: int) -> list[float]:
    """Latencies (ms) of requests started on a fixed schedule of ``rate`` per second."""
    latencies: list[float] = []
    failures = 0
    async with httpx2.AsyncClient(
        base_url=url,
        trust_env=False,
        timeout=10,
        limits=httpx2.Limits(max_connections=64, max_keepalive_connections=64),
    ) as c:
        for _ in range(20):  # warm: connections open, record and secret cached
            await c.get("/api/v1/whoami", headers=headers)

        async def one(scheduled: float) -> None:
            nonlocal failures
            response = await c.get("/api/v1/whoami", headers=headers)
            if response.status_code != 200:
                failures += 1
            latencies.append((time.perf_counter() - scheduled) * 1000)

        tasks = []
        start = time.perf_counter()
        for i in range(int(seconds * rate)):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*tasks)
    if failures:
        print(f"  the legitimate client was refused {failures} times")
    return latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def setup(url: str) -> tuple[str, str]:
    async with httpx2.AsyncClient(base_url=url, trust_env=False, timeout=30) as c:
        await c.post("/graphql", json={"query": LOGIN, "variables": {"e": EMAIL, "p": PASSWORD}})
        body = (await c.post("/graphql", json={"query": CREATE})).json()
    created = body["data"]["createApiKey"]
    return created["apiKey"]["id"], created["keySecret"]


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFA_")}
    env |= {
        "WFA_BOOTSTRAP_ADMIN_EMAIL": EMAIL,
        "WFA_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD,
        "WFA_LOG_LEVEL": "WARNING",
    }
    out = workdir / "serve.out"
    with out.open("wb") as stdout:
        process = subprocess.Popen(
            [
                str(WFA_KEYS),
                "serve",
                "--port",
                "0",
                "--database-url",
                f"sqlite://{workdir / 'flood.sqlite3'}",
            ],
            stdout=stdout,
            stderr=subprocess.DEVNULL,
            env=env,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(r"Serving on (\S+)", out.read_text())
        if found:
            try:
                if httpx2.get(f"{found.group(1)}/healthz", trust_env=False).status_code == 200:
                    return process, found.group(1)
            except httpx2.TransportError:
                pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--attackers", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--attack", nargs=2, metavar=("URL", "KEY_ID"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    seconds = max(1.0, min(args.seconds, 60.0))
    attackers = max(1, min(args.attackers, 200))
    if args.attack:
        url, key_id = args.attack
        asyncio.run(attack(url, key_id, seconds, attackers, max(1, min(args.concurrency, 16))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        process, url = start_server(Path(tmp))
        try:
            key_id, secret = asyncio.run(setup(url))
            headers = basic(key_id, secret)
            quiet = asyncio.run(legitimate(url, headers, seconds, args.rate))
            flood = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--attack",
                    url,
                    key_id,
                    "--seconds",
                    str(seconds + 1),
                    "--attackers",
                    str(attackers),
                    "--concurrency",
                    str(args.concurrency),
                ],
                stdout=subprocess.PIPE,
            )
            time.sleep(1)  # let the flood get going
            flooded = asyncio.run(legitimate(url, headers, seconds, args.rate))
            attack_out, _ = flood.communicate(timeout=seconds + 60)
        finally:
            process.terminate()
            process.wait(timeout=20)
    rows: list[tuple[str, Any, Any]] = [
        ("p50", statistics.median(quiet), statistics.median(flooded)),
        ("p99", percentile(quiet, 0.99), percentile(flooded, 0.99)),
    ]
    print(f"legitimate client, {args.rate} req/s, {seconds:.0f} s per phase, ms:")
    print(f"  {'':4} {'quiet':>8} {'flood':>8} {'ratio':>6}")
    for name, q, f in rows:
        print(f"  {name:4} {q:8.1f} {f:8.1f} {f / q:6.2f}")
    print(f"flood from {attackers} addresses, statuses: {attack_out.decode().strip()}")


if __name__ == "__main__":
    main()
