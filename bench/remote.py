"""Remote verification (issue 19): a remote app checking keys through a real ``wfa-keys serve``.

Starts the service (``wfa-keys serve``, SQLite in a temporary folder unless
``--database-url``) and a remote app (this file's :func:`create_app` under uvicorn) as
separate processes, and measures, side by side in one run:

1. **Warm requests**: ``/auth/ping`` (the middleware with a ``RemoteAuthority``) against
   ``/bare/ping`` (the same route, no middleware) in the same remote app process, with Basic
   and with a Bearer token from the service; alternating rounds of ``--seconds`` each, driven
   by wrk as ``bench/run.py`` does (the remote app on one CPU, wrk on the other). Goal: ratio
   >= 0.85.
2. **Cold verification**: the first call of a new key to the remote app against the first
   call of another new key to the service's own ``/api/v1/whoami`` (both pay the service's
   argon2 check); p50 of each over ``--cold`` rounds. Goal: within 5 ms.
3. **Revocation**: disable a warm key in the service (GraphQL, as the console does) and poll
   the remote app every 5 ms until it refuses it; ``--rounds`` rounds (30). Goal: p99 <= 1 s.

    .venv/bin/python bench/remote.py [--seconds 3] [--rounds 30] [--cold 15]

Installs wrk (Debian's package) when missing. Uses only 127.0.0.1; both processes are stopped
at the end whatever happens.
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
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

# For bench.run, whether this file runs as a script or as the remote app under uvicorn.
sys.path.append(str(Path(__file__).resolve().parents[1]))
from bench.run import SERVER_CPU, Server, ensure_tool, pin, wrk

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EMAIL = "bench@acme.example"
PASSWORD = "a long bench password"
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { email } }"
CREATE = """mutation($s: [String!]) { createApiKey(input: {name: "bench", scopes: $s}) {
  keySecret apiKey { id } } }"""
ENABLE = "mutation($id: ID!, $on: Boolean!) { setApiKeyEnabled(id: $id, enabled: $on) { id } }"
GIVE_UP = 3.0
STEP = 0.005
CONNECTIONS = 8
SECONDS_WARM = 1


# -- the remote app (run by uvicorn in its own process) -------------------------------------


async def ping(request: Request) -> PlainTextResponse:
    return PlainTextResponse("pong")


def create_app() -> Starlette:
    """``/bare/ping`` and ``/auth/ping`` (behind the middleware and a RemoteAuthority)."""
    from wfa_auth import ApiKeyAuthMiddleware
    from wfa_auth.remote import RemoteAuthority

    authority = RemoteAuthority(
        os.environ["WFA_SERVICE_URL"],
        key_id=os.environ["WFA_SERVICE_KEY_ID"],
        key_secret=os.environ["WFA_SERVICE_KEY_SECRET"],
    )
    protected = ApiKeyAuthMiddleware(Starlette(routes=[Route("/ping", ping)]), authority=authority)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with protected.running():
            yield

    return Starlette(
        routes=[
            Mount("/bare", app=Starlette(routes=[Route("/ping", ping)])),
            Mount("/auth", app=protected),
        ],
        lifespan=lifespan,
    )


# -- processes ------------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFA_")}
    return env | extra


@contextmanager
def process(
    command: list[str], env: dict[str, str], log: Path, ready: str, probe: str
) -> Iterator[Server]:
    """A process whose log line ``ready`` (a regex with one group) gives its base URL, once
    ``probe`` (a path) answers."""
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            found = re.search(ready, log.read_text())
            if found:
                try:
                    httpx2.get(found.group(1) + probe, trust_env=False, timeout=2)
                except httpx2.TransportError:
                    time.sleep(0.1)
                    continue
                # taskset execs the command: the process is the server itself.
                yield Server(found.group(1), proc.pid)
                return
            time.sleep(0.1)
        raise SystemExit(f"{command[0]} did not start: {log.read_text()[-2000:]}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- the measures ---------------------------------------------------------------------------


def basic(key_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def gql(c: httpx2.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    body: dict[str, Any] = (
        await c.post("/graphql", json={"query": query, "variables": variables})
    ).json()
    if "errors" in body:
        raise SystemExit(f"GraphQL error: {body['errors']}")
    data: dict[str, Any] = body["data"]
    return data


async def new_key(c: httpx2.AsyncClient, scopes: list[str] | None = None) -> tuple[str, str]:
    created = (await gql(c, CREATE, s=scopes))["createApiKey"]
    return created["apiKey"]["id"], created["keySecret"]


async def warm(binary: str, remote: Server, c: httpx2.AsyncClient, seconds: int) -> None:
    key = await new_key(c)
    token = (
        await c.post("/api/v1/auth/api-key/token", json={"key_id": key[0], "key_secret": key[1]})
    ).json()["access_token"]
    for name, headers in (("Basic", basic(*key)), ("Bearer", {"Authorization": f"Bearer {token}"})):
        bare: list[float] = []
        auth: list[float] = []
        wrk(binary, remote, "/auth/ping", SECONDS_WARM, CONNECTIONS, headers)  # verified, then warm
        for _ in range(3):  # alternating, so that load from elsewhere hits both alike
            bare.append(wrk(binary, remote, "/bare/ping", seconds, CONNECTIONS, headers).rate)
            auth.append(wrk(binary, remote, "/auth/ping", seconds, CONNECTIONS, headers).rate)
        b, a = statistics.median(bare), statistics.median(auth)
        print(
            f"warm {name:6}: bare {b:7.0f} req/s, remote-verified {a:7.0f} req/s, ratio {a / b:.2f}"
        )


async def cold(service: str, remote: str, c: httpx2.AsyncClient, rounds: int) -> None:
    direct: list[float] = []
    through: list[float] = []
    async with (
        httpx2.AsyncClient(base_url=service, trust_env=False, timeout=30) as s,
        httpx2.AsyncClient(base_url=remote, trust_env=False, timeout=30) as r,
    ):
        for i in range(rounds):
            a, b = await new_key(c), await new_key(c)
            calls = [
                (s, "/api/v1/whoami", basic(*a), direct),
                (r, "/auth/ping", basic(*b), through),
            ]
            for client, path, headers, into in calls if i % 2 else calls[::-1]:
                started = time.perf_counter()
                response = await client.get(path, headers=headers)
                into.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
    d, t = statistics.median(direct), statistics.median(through)
    print(f"cold   : service's own check p50 {d:.1f} ms, through the remote app p50 {t:.1f} ms,")
    print(f"         difference {t - d:+.1f} ms ({rounds} rounds)")


async def revocation(remote: str, c: httpx2.AsyncClient, rounds: int) -> None:
    key = await new_key(c)
    headers = basic(*key)
    latencies = []
    async with httpx2.AsyncClient(base_url=remote, trust_env=False, timeout=30) as r:

        async def until(accepted: bool) -> None:
            deadline = time.monotonic() + GIVE_UP
            while time.monotonic() < deadline:
                if ((await r.get("/auth/ping", headers=headers)).status_code == 200) == accepted:
                    return
                await asyncio.sleep(STEP)
            raise SystemExit(f"not {'accepted' if accepted else 'refused'} within {GIVE_UP} s")

        for _ in range(rounds):
            await gql(c, ENABLE, id=key[0], on=True)
            await until(accepted=True)
            await r.get("/auth/ping", headers=headers)  # warm
            started = time.perf_counter()
            await gql(c, ENABLE, id=key[0], on=False)
            await until(accepted=False)
            latencies.append((time.perf_counter() - started) * 1000)
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    print(
        f"revoke : disable -> refused by the remote app, {rounds} rounds: min {ordered[0]:.0f}"
        f" p50 {statistics.median(ordered):.0f} p99 {p99:.0f} max {ordered[-1]:.0f} ms"
    )


async def run(service: str, remote_for: Any, args: argparse.Namespace) -> None:
    async with httpx2.AsyncClient(base_url=service, trust_env=False, timeout=60) as c:
        await gql(c, LOGIN, e=EMAIL, p=PASSWORD)
        verifier = await new_key(c, ["keys:verify"])
        with remote_for(*verifier) as remote:
            await warm(ensure_tool("wrk"), remote, c, args.seconds)
            await cold(service, remote.url, c, args.cold)
            await revocation(remote.url, c, args.rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url")
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--cold", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        database_url = args.database_url or f"sqlite://{work / 'bench.sqlite3'}"
        env = _env(
            WFA_BOOTSTRAP_ADMIN_EMAIL=EMAIL,
            WFA_BOOTSTRAP_ADMIN_PASSWORD=PASSWORD,
            WFA_LOG_LEVEL="WARNING",
        )
        command = [str(BIN / "wfa-keys"), "serve", "--port", "0", "--database-url", database_url]
        with process(command, env, work / "service.log", r"Serving on (\S+)", "/healthz") as served:
            service = served.url

            @contextmanager
            def remote_for(key_id: str, secret: str) -> Iterator[Server]:
                remote_env = _env(
                    WFA_SERVICE_URL=service,
                    WFA_SERVICE_KEY_ID=key_id,
                    WFA_SERVICE_KEY_SECRET=secret,
                )
                uvicorn = [*pin(SERVER_CPU), str(BIN / "uvicorn"), "--factory"]
                uvicorn += ["bench.remote:create_app"]
                uvicorn += ["--host", "127.0.0.1", "--port", "0", "--log-level", "info"]
                uvicorn += ["--no-access-log"]
                with process(
                    uvicorn,
                    remote_env,
                    work / "remote.log",
                    r"Uvicorn running on (\S+)",
                    "/bare/ping",
                ) as url:
                    yield url

            print(f"service {describe(database_url)}, remote app: separate uvicorn processes")
            asyncio.run(run(service, remote_for, args))


def describe(database_url: str) -> str:
    return "on PostgreSQL" if database_url.startswith("postgres") else "on SQLite"


if __name__ == "__main__":
    main()
