"""Usage control in numbers: the warm call of a limited key, analytics, the usage query.

1. **Warm call with a rate limit and a quota against the same call without.** Two keys of
   one organization, identical but for the limits, called warm through the API's
   middleware (``create_api``, as ``serve`` mounts it) with the database counter store,
   then with Redis: the ASGI app is called directly (no HTTP, no server), the harshest
   comparison, since the limit's cost is not diluted by the server's. The two keys
   alternate in ``--rounds`` rounds of ``--calls`` calls; the ratio printed is the median of
   the per-round ratios of calls per second (targets: 0.85 with the database, 0.8 with
   Redis).
2. **Recording analytics**: the cost of counting one call (``CallRecorder.count``), in
   microseconds (target: at most 2).
3. **The admin's usage query** for 30 days of hours of one key, through GraphQL (signed in,
   ``apiKey(id) { usage(since, granularity: HOUR) }``) on a database seeded by
   ``bench/seed_usage.py`` (a year of hours for 1,000 keys): p50 and p99 in milliseconds
   over ``--queries`` queries of random keys (target: p99 at most 50 ms on PostgreSQL).
   Then ``organizationUsage`` (the buckets and the top 10 keys) for 7 and 90 days of days
   and 31 days of hours, ``--org-queries`` each over random ranges of the seeded year
   (targets: p99 at most 50 ms for 7 days and 100 ms for 90 on PostgreSQL).
   Beside each query, a key's SQL alone (the statement ``key_usage`` sends, through the
   driver): the floor the GraphQL figure is compared with, in the same run. The heap is
   frozen once the app is built, as ``serve`` does after startup
   (:func:`wfa_keys.app.freeze_startup_heap`).

    .venv/bin/python bench/seed_usage.py postgres://postgres@127.0.0.1:5432/wfa_bench
    .venv/bin/python -P bench/usage.py postgres://postgres@127.0.0.1:5432/wfa_bench \\
        --redis redis://127.0.0.1:6379/5
    .venv/bin/python -P bench/usage.py postgres://... --parts 3   # the usage query only

4. **The same comparison over HTTP**, the shape users deploy: a real ``wfa-keys serve``
   (one worker, on CPU 0, with ``taskset``) on the given database, driven by wrk (on CPU 1)
   with a warm Basic call to ``/api/v1/whoami`` of each key, the two keys interleaved in
   ``--rounds`` rounds of ``--seconds`` seconds (through bench/run.py's helpers), with the
   database counter store (``WFA_THROTTLE_STORE=database``), then with Redis (``--redis``).
   The ratio printed is the median of the per-round ratios of requests per second; beside
   it, the ratio of the server's CPU time a request. Part 1's figure is the harsher; this one
   is what a deployment sees. Needs wrk (installed with apt-get when missing)::

    .venv/bin/python -P bench/usage.py postgres://postgres@127.0.0.1:5432/wfa_bench \
        --redis redis://127.0.0.1:6379/5 --parts 4 --rounds 9

(``-P``: bench/graphql.py would otherwise shadow the graphql package.) ``--parts 12`` runs
1. and 2. only, ``--parts 4`` 4. only, on any database (no seeding).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import random
import statistics
import sys
import tempfile
import time
import timeit
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.routing import Route
from tortoise.connection import get_connection

from wfa_auth import CALL_OUTCOMES, CounterStore, generate_key_id, generate_key_secret
from wfa_auth._calls import CallRecorder
from wfa_keys.api import create_api
from wfa_keys.app import freeze_startup_heap
from wfa_keys.counters import DatabaseCounterStore, RedisCounterStore
from wfa_keys.crypto import hasher_for
from wfa_keys.db import close_global, open_global
from wfa_keys.graphql import create_graphql_app
from wfa_keys.models import ApiKey, KeyUsage, Organization, User
from wfa_keys.settings import Settings
from wfa_keys.usage import COLUMNS

SETTINGS = Settings(database_url="unused", argon2_time_cost=2)
#: The limited key's rate limit and quota: never reached in a run, always counted.
LIMITS = {
    "rate_limit_requests": 1_000_000,
    "rate_limit_per_seconds": 60,
    "quota_requests": 1_000_000_000,
    "quota_period": "month",
}
SEED_EMAIL, SEED_PASSWORD = "bench@usage.example", "bench usage password"


class NullSink:
    """A call sink that keeps nothing (the cost measured is the count, not the write)."""

    async def record_calls(self, counts: Any) -> None:
        return None


async def warm_owner() -> User:
    """The admin who owns the warm bench's keys (made on the first run)."""
    organization, _ = await Organization.get_or_create(
        name="Warm bench", defaults={"has_workflow_automation": True}
    )
    owner, _ = await User.get_or_create(
        email="warm@usage.example",
        defaults={"password_hash": "unused", "role": "admin", "organization": organization},
    )
    return owner


async def _key(owner: User, **limits: Any) -> tuple[str, str]:
    secret = generate_key_secret()
    key = await ApiKey.create(
        key_id=generate_key_id(),
        name="Bench warm",
        secret_hash=hasher_for(SETTINGS).hash(secret),
        owner=owner,
        organization_id=owner.organization_id,
        scopes=["workflows:read"],
        allowed_cidrs=[],
        **limits,
    )
    return key.key_id, secret


def _basic(key_id: str, secret: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{key_id}:{secret}".encode())


def _scope(key_id: str, secret: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v1/whoami",
        "raw_path": b"/v1/whoami",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench"), (b"authorization", _basic(key_id, secret))],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }


async def _calls_per_second(app: Any, scope: dict[str, Any], calls: int) -> float:
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.perf_counter()
    for _ in range(calls):
        await app(dict(scope), receive, send)
    elapsed = time.perf_counter() - started
    assert set(statuses) == {200}, set(statuses)
    return calls / elapsed


async def warm_ratio(store: CounterStore, owner: User, rounds: int, calls: int) -> float:
    api = create_api(SETTINGS, counter_store=store, call_sink=NullSink())
    plain = _scope(*await _key(owner))
    limited = _scope(*await _key(owner, **LIMITS))
    ratios = []
    async with api.running():
        for scope in (plain, limited):  # verified once: every call below is warm
            await _calls_per_second(api, scope, 50)
        for _ in range(rounds):
            without = await _calls_per_second(api, plain, calls)
            with_limits = await _calls_per_second(api, limited, calls)
            ratios.append(with_limits / without)
            print(f"    {without:9,.0f} calls/s without, {with_limits:9,.0f} with limits")
    return statistics.median(ratios)


def http_ratio(
    database_url: str, store: str, plain: tuple[str, str], limited: tuple[str, str], args: Any
) -> float:
    """Part 4 with ``store`` as ``WFA_THROTTLE_STORE``: the median of the per-round ratios
    of requests per second, limited / unlimited, through one ``wfa-keys serve``."""
    sys.path.append(str(Path(__file__).resolve().parent))  # last, as -P leaves it out
    # Imported by name: this folder is put on the path here, not known to mypy.
    run = importlib.import_module("run")
    binary = run.ensure_tool("wrk")
    path = "/api/v1/whoami"
    with tempfile.TemporaryDirectory(prefix="wfa-usage-http-") as tmp:
        settings = {"WFA_THROTTLE_STORE": store}
        with run.serve(database_url, Path(tmp) / "serve.log", settings=settings) as service:
            cases = {
                "without": (service, path, {"Authorization": _basic(*plain).decode()}),
                "with limits": (service, path, {"Authorization": _basic(*limited).decode()}),
            }
            for _target, _path, headers in cases.values():
                # Verified once (argon2) before wrk's many connections ask at once.
                httpx2.get(service.url + path, headers=headers, timeout=10).raise_for_status()
            results = run.run_rounds(binary, cases, args)
    run.print_ratio(results, "with limits", "without", "limited / unlimited")
    pairs = zip(results["with limits"], results["without"], strict=True)
    ratios: list[float] = [limits.rate / without.rate for limits, without in pairs]
    return statistics.median(ratios)


def recording_microseconds() -> float:
    recorder = CallRecorder(NullSink())
    keys = [generate_key_id() for _ in range(1000)]
    count = recorder.count
    runs = 200_000
    seconds = min(
        timeit.repeat(
            lambda: count(keys[random.randrange(1000)], "org", 0),
            number=runs,
            repeat=5,
        )
    )
    lookup = min(timeit.repeat(lambda: keys[random.randrange(1000)], number=runs, repeat=5))
    return (seconds - lookup) / runs * 1e6


async def _sql_ms(organization_id: Any, key_id: str, since: datetime) -> float:
    """The usage query's SQL alone for one key, through the driver, in milliseconds."""
    query = KeyUsage.filter(
        organization_id=organization_id, key_id=key_id, hour__gte=since
    ).values_list("hour", *COLUMNS)
    query.sql()
    sql, parameters = query.query.get_parameterized_sql()
    started = time.perf_counter()
    _count, rows = await get_connection("default").execute_query(sql, parameters)
    elapsed = time.perf_counter() - started
    assert len(rows) >= 720
    return elapsed * 1000


def _percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


ORG_USAGE = """query($since: DateTime!, $until: DateTime, $granularity: UsageGranularity) {
  organizationUsage(since: $since, until: $until, granularity: $granularity, top: 10) {
    buckets { start total success rateLimited quotaExceeded insufficientScope ipNotAllowed
      disabled expired invalidSecret }
    topKeys { keyId total success apiKey { name } } } }"""
#: organizationUsage's shapes: (label, days, granularity); 7 days of days is the console's.
ORG_SHAPES = [("7 days, DAY", 7, "DAY"), ("90 days, DAY", 90, "DAY"), ("31 days, HOUR", 31, "HOUR")]


async def _signed_in(client: httpx2.AsyncClient) -> None:
    login = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { id } }"
    body = (
        await client.post(
            "/graphql", json={"query": login, "variables": {"e": SEED_EMAIL, "p": SEED_PASSWORD}}
        )
    ).json()
    assert "errors" not in body, body


async def usage_query_ms(queries: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """(p50, p99) of the GraphQL query and (p50, p99) of its SQL alone, in milliseconds."""
    organization = await Organization.get_or_none(name="Usage bench")
    if organization is None:
        raise SystemExit("seed the database first: bench/seed_usage.py")
    key_ids: list[Any] = await ApiKey.filter(organization_id=organization.id).values_list(
        "key_id", flat=True
    )
    app = Starlette(routes=[Route("/graphql", create_graphql_app(SETTINGS))])
    query = """query($id: ID!, $since: DateTime!) { apiKey(id: $id) {
      usage(since: $since, granularity: HOUR) { start total success rateLimited
        quotaExceeded insufficientScope ipNotAllowed disabled expired invalidSecret } } }"""
    transport = httpx2.ASGITransport(app=app)
    times, sql_times = [], []
    async with httpx2.AsyncClient(transport=transport, base_url="http://bench") as client:
        await _signed_in(client)
        freeze_startup_heap()
        moment = datetime.now(UTC) - timedelta(days=30)
        since = moment.isoformat()
        first_hour = moment.replace(minute=0, second=0, microsecond=0)
        for i in range(queries + 20):
            variables = {"id": random.choice(key_ids), "since": since}
            started = time.perf_counter()
            response = await client.post("/graphql", json={"query": query, "variables": variables})
            elapsed = time.perf_counter() - started
            buckets = response.json()["data"]["apiKey"]["usage"]
            assert len(buckets) == 721
            assert sum(b["total"] for b in buckets) > 0
            sql = await _sql_ms(organization.id, random.choice(key_ids), first_hour)
            if i >= 20:  # the first ones warm the caches
                times.append(elapsed * 1000)
                sql_times.append(sql)
    return _percentiles(times), _percentiles(sql_times)


async def organization_usage_ms(queries: int) -> dict[str, tuple[float, float]]:
    """(p50, p99) of ``organizationUsage`` through GraphQL in milliseconds, per shape of
    :data:`ORG_SHAPES`, over ranges ending at random moments of the seeded year (not on
    the hour: a range of hours starts and ends mid-day)."""
    app = Starlette(routes=[Route("/graphql", create_graphql_app(SETTINGS))])
    transport = httpx2.ASGITransport(app=app)
    figures = {}
    async with httpx2.AsyncClient(transport=transport, base_url="http://bench") as client:
        await _signed_in(client)
        freeze_startup_heap()
        for label, days, granularity in ORG_SHAPES:
            times = []
            for i in range(queries + 5):
                until = datetime.now(UTC) - timedelta(minutes=random.randrange(60 * 24 * 270))
                variables = {
                    "since": (until - timedelta(days=days)).isoformat(),
                    "until": until.isoformat(),
                    "granularity": granularity,
                }
                started = time.perf_counter()
                response = await client.post(
                    "/graphql", json={"query": ORG_USAGE, "variables": variables}
                )
                elapsed = time.perf_counter() - started
                usage = response.json()["data"]["organizationUsage"]
                assert len(usage["topKeys"]) == 10
                assert sum(b["total"] for b in usage["buckets"]) > 0
                if i >= 5:  # the first ones warm the caches
                    times.append(elapsed * 1000)
            figures[label] = _percentiles(times)
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url")
    parser.add_argument("--redis", default=None, help="a redis:// URL for the Redis case")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument(
        "--org-queries", type=int, default=200, help="organizationUsage queries per shape"
    )
    parser.add_argument("--parts", default="123", help="the parts to run (default: 123)")
    parser.add_argument("--seconds", type=int, default=5, help="part 4: seconds a round")
    parser.add_argument("--connections", type=int, default=32, help="part 4: wrk's")
    args = parser.parse_args()
    await open_global(args.database_url)
    try:
        owner = await warm_owner()
        if "1" in args.parts:
            print("1. warm call, limited / unlimited (target >= 0.85 database, >= 0.8 Redis)")
            ratio = await warm_ratio(DatabaseCounterStore(), owner, args.rounds, args.calls)
            print(f"   database store: {ratio:.3f}")
            if args.redis:
                redis = RedisCounterStore.from_url(args.redis, prefix="wfa-keys:bench:")
                ratio = await warm_ratio(redis, owner, args.rounds, args.calls)
                await redis.aclose()
                print(f"   Redis store:    {ratio:.3f}")
        if "2" in args.parts:
            print("2. recording analytics (target <= 2 us per call)")
            print(f"   {recording_microseconds():.3f} us per call ({len(CALL_OUTCOMES)} outcomes)")
        if "3" in args.parts:
            print("3. usage query, 30 days of hours (target p99 <= 50 ms on PostgreSQL)")
            (p50, p99), (sql50, sql99) = await usage_query_ms(args.queries)
            print(f"   p50 {p50:.1f} ms, p99 {p99:.1f} ms over {args.queries} queries")
            print(f"   its SQL alone: p50 {sql50:.1f} ms, p99 {sql99:.1f} ms (same run)")
            print("   organizationUsage (targets: p99 <= 50 ms for 7 days, <= 100 ms for 90)")
            for label, (p50, p99) in (await organization_usage_ms(args.org_queries)).items():
                print(f"   {label}: p50 {p50:.1f} ms, p99 {p99:.1f} ms over {args.org_queries}")
        if "4" in args.parts:
            print("4. warm call over HTTP, wfa-keys serve, limited / unlimited")
            plain, limited = await _key(owner), await _key(owner, **LIMITS)
            stores = {"database store": "database"}
            if args.redis:
                stores["Redis store"] = args.redis
            for label, store in stores.items():
                ratio = http_ratio(args.database_url, store, plain, limited, args)
                print(f"   {label}: {ratio:.3f}")
    finally:
        await close_global()


if __name__ == "__main__":
    asyncio.run(main())
