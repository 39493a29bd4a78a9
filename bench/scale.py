"""The service at 10^3, 10^5 and 10^6 keys in one organization, on PostgreSQL.

For each size it empties the database, seeds the keys with one SQL statement
(``generate_series``: seconds, not argon2; every key shares one of two argon2 hashes of one
known secret, so that authentication can be measured with real hashes), and prints:

- how long the first expiry-reminder check takes on the keys just seeded (every server
  process runs one at its start: some 23,000 reminders at 10^6), run before the app starts so
  that this one-time burst does not run beside the figures below;
- p99 (and p50) at concurrency 1 of the admin list through the whole app as a signed-in admin
  (``apiKeys(first: 100)``): the first page, the 50th page (keyset cursors), a search by a
  name fragment and by a full Key ID, ``status: DISABLED`` and ``status: EXPIRED``,
  ``expiringWithinDays: 7``, and ``totalCount`` alone. The app is called directly, as an ASGI
  server would (no HTTP client, whose own work would count as the server's; as
  ``bench/graphql.py`` does), and beside each time the CPU time of this process per call (the
  server's work: the rest of the time is waiting for the database and for a CPU);
- cold Basic authentication (argon2 with the service's parameters and a key lookup): p50
  and p99 over distinct keys, through the service's middleware and key store;
- at the largest size: warm throughput over 50,000 distinct keys and over 50,000 distinct
  tokens against one, two ways: the middleware called directly in this process around a
  trivial app (what a warm call costs the Python code, and the CPU's caches over 50,000
  entries), and over HTTP (wrk, 32 connections, cycling through all the distinct
  Authorization headers with a Lua script) to ``/api/v1/whoami`` of the whole service
  (``create_app`` under uvicorn as ``wfa-keys serve`` runs it, request log on) pinned to
  CPU 0, wrk on CPU 1, interleaved rounds (``--http-rounds``, 3 by default) starting 70 s
  after the warm-up, once its own write-behind is done, each round as long as the server's
  interval between writes of call analytics and followed by a pause a second longer, so no
  round pays for the other case's writes: what users deploy; each with the store lookups
  made while warm (0 means no SQL per warm call), the writes of last uses, and the CPU a
  request of the server and of PostgreSQL (which runs the flushes of call counts and last
  uses, more rows the more keys are used), and the server's garbage collection (its time a
  request, its passes, the full ones); the process's RSS after warming 200,000
  distinct keys, the inactivity sweep disabling 400,000 keys, and how long
  ``wfa-keys serve`` takes to answer ``/healthz``;
- with ``--small-database-url``: cold Basic authentication side by side in the largest
  database and in one of 1,000 keys (one process each on the same CPU, calls alternating),
  the difference of their p50 and p99, and the key lookup alone, by the clock and by the
  database's own time (``EXPLAIN ANALYZE``).

    .venv/bin/python bench/scale.py --database-url postgres://postgres@127.0.0.1:5432/wfa_scale
    .venv/bin/python bench/scale.py --database-url ... --sizes 1000,100000   # quicker

The database is emptied first: give it one of its own. The warm-cache figures use argon2 at
argon2-cffi's cheapest parameters for the keys they warm (the first keys, as many as those
figures call, are seeded with that hash; the server of the HTTP figures verifies with those
parameters, so that it never rehashes them), so that warming 200,000 keys takes minutes, not
hours; everything else, the cold authentication included, uses the service's own parameters.

The 10^6 seed takes minutes and loads the machine: seed once, then measure parts of the tail
on the keys seeded, as often as needed:

    .venv/bin/python bench/scale.py --database-url URL --sizes 1000000 --seed-only
    .venv/bin/python bench/scale.py --database-url URL --reuse --parts list
    .venv/bin/python bench/scale.py --database-url URL --reuse --parts http,rss
    .venv/bin/python bench/scale.py --database-url URL --reuse --parts cold \
        --small-database-url URL_OF_ANOTHER   # seeded with --sizes 1000 --seed-only
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/graphql.py would shadow the graphql-core package of that name.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse
import asyncio
import base64
import functools
import gc
import importlib.util
import json
import logging
import os
import resource
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # PostgreSQL only, as this bench
import httpx2
from tortoise.connection import get_connection

from wfa_auth import ApiKeyAuthMiddleware, Argon2Verifier, Caching, Metering
from wfa_auth._keyformat import SECRET_PREFIX, base62_checksum
from wfa_auth._tokens import new_access_token, secret_fingerprint, token_digest
from wfa_keys import api, cli
from wfa_keys.app import create_app
from wfa_keys.db import database, listener_connect_args
from wfa_keys.inactivity import disable_inactive_keys
from wfa_keys.settings import Settings
from wfa_keys.store import TortoiseKeyStore, TortoiseTokenStore
from wfa_keys.webhooks.reminders import send_expiry_reminders

EMAIL, PASSWORD = "scale@acme.example", "a bench password"
SECRET = SECRET_PREFIX + "S" * 32 + base62_checksum("S" * 32)
WARM_KEYS = 50_000
RSS_KEYS = 200_000
HTTP_ROUNDS = 3
SAMPLES = 200

LIST = """query Keys($first: Int!, $after: String, $search: String, $status: ApiKeyStatus,
  $days: Int) {
  apiKeys(first: $first, after: $after, search: $search, status: $status,
          expiringWithinDays: $days) {
    pageInfo { hasNextPage endCursor }
    nodes { id name enabled status createdAt expiresAt lastUsedAt owner { email } }
  } }"""
COUNT = "query { apiKeys(first: 1) { totalCount } }"
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { email } }"


def key_id(n: int) -> str:
    """Key ``n``'s Key ID (20 base62 digits after the prefix)."""
    return f"wfak_{n:020d}"


def usable(n: int) -> bool:
    """Whether key ``n`` is enabled and unexpired, as :data:`SEED` makes it."""
    return n % 10 != 9 and (n % 3 == 0 or (n * 7919) % 400 - 35 > 0)


def usable_keys(first: int, count: int) -> list[int]:
    """The first ``count`` usable keys from ``first`` on."""
    numbers: list[int] = []
    n = first
    while len(numbers) < count:
        if usable(n):
            numbers.append(n)
        n += 1
    return numbers


def cheap_keys(size: int) -> int:
    """How many keys (the first ones) carry the cheap hash: every usable key the warm and RSS
    figures call, never the last 1,000 (the cold figures call those with the real hash)."""
    return max(0, min(size - 1000, usable_keys(1, max(WARM_KEYS, RSS_KEYS))[-1]))


# -- Seeding ------------------------------------------------------------------------------

SEED = """
INSERT INTO api_key (key_id, name, secret_hash, enabled, created_at, expires_at, last_used_at,
                     scopes, allowed_cidrs, owner_id, organization_id)
SELECT 'wfak_' || lpad(i::text, 20, '0'),
       'svc ' || substr(md5(i::text), 1, 12),
       CASE WHEN i <= $4 THEN $5 ELSE $6 END,
       i % 10 <> 9,
       $7::timestamptz - make_interval(mins => i / 2),
       CASE WHEN i % 3 = 0 THEN NULL
            ELSE $7::timestamptz + make_interval(days => ((i::bigint * 7919) % 400 - 35)::int) END,
       CASE WHEN i % 5 < 2 THEN $7::timestamptz - interval '200 days'
            ELSE $7::timestamptz - interval '1 day' END,
       '["workflows:read","workflows:write"]', '[]', $2, $3
FROM generate_series(1, $1) AS i
"""


async def seed(conn: Any, size: int, cheap_hash: str, real_hash: str, password_hash: str) -> str:
    """Empty tables, then one organization, its admin and ``size`` keys; the organization's ID.

    Keys: 10% disabled, a third never expiring, the rest expiring from 35 days ago to a year
    ahead, 40% of the enabled ones unused for 200 days (the inactivity sweep's 400,000 at
    10^6), names ``svc <12 hex digits>``, two keys per creation minute (ties on the cursor).
    """
    await conn.execute(
        'TRUNCATE audit_event, access_token, session, api_key, "user", organization, '
        "key_change, key_network, key_reminder, throttle_slot CASCADE"
    )
    org, admin = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    await conn.execute(
        "INSERT INTO organization (id, name, has_workflow_automation, created_at) "
        "VALUES ($1, 'Scale', true, $2)",
        org,
        now,
    )
    await conn.execute(
        'INSERT INTO "user" (id, email, password_hash, role, organization_id, is_active, '
        "created_at) VALUES ($1, $2, $3, 'admin', $4, true, $5)",
        admin,
        EMAIL,
        password_hash,
        org,
        now,
    )
    await conn.execute(SEED, size, admin, org, cheap_keys(size), cheap_hash, real_hash, now)
    await conn.execute("VACUUM ANALYZE api_key")
    return str(org)


async def seed_tokens(conn: Any, count: int, cheap_hash: str) -> list[str]:
    """``count`` access tokens, one for each of the first ``count`` usable keys."""
    tokens = [new_access_token() for _ in range(count)]
    expires = datetime.now(UTC) + timedelta(days=1)
    fingerprint = secret_fingerprint(cheap_hash)
    numbers = usable_keys(1, count)
    await conn.copy_records_to_table(
        "access_token",
        records=[
            (token_digest(t), key_id(n), fingerprint, expires)
            for n, t in zip(numbers, tokens, strict=True)
        ],
        columns=["token_hash", "key_id", "secret_fingerprint", "expires_at"],
    )
    return tokens


# -- Measuring ----------------------------------------------------------------------------


def service_verifier() -> Argon2Verifier:
    """argon2 with the service's parameters (its settings' defaults), at the normal priority."""
    settings = Settings()
    return Argon2Verifier(
        time_cost=settings.argon2_time_cost,
        memory_cost_kib=settings.argon2_memory_cost_kib,
        parallelism=settings.argon2_parallelism,
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def latencies(
    call: Callable[[], Awaitable[object]], samples: int = SAMPLES, *, cpu: bool = False
) -> str:
    """p50 and p99 of ``call`` in milliseconds, one at a time, after two warm-up calls;
    with ``cpu``, also the p50 and p99 of this process's CPU time per call."""
    for _ in range(2):
        await call()
    times, cpu_times = [], []
    for _ in range(samples):
        started, cpu_started = time.perf_counter(), time.process_time()
        await call()
        times.append((time.perf_counter() - started) * 1000)
        cpu_times.append((time.process_time() - cpu_started) * 1000)
    figure = f"p50 {percentile(times, 0.5):7.2f} ms  p99 {percentile(times, 0.99):7.2f} ms"
    if cpu:
        figure += (
            f"  (CPU p50 {percentile(cpu_times, 0.5):5.2f} ms,"
            f" p99 {percentile(cpu_times, 0.99):5.2f} ms)"
        )
    return figure


async def asgi_call(
    app: Any, body: bytes, cookie: str = ""
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """One ``POST /graphql`` through ``app``, called directly as an ASGI server would (no
    HTTP client: its own work would be counted as the server's); status, body, headers."""
    headers = [
        (b"host", b"bench"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("bench", 80),
    }
    delivered, done = False, asyncio.Event()
    status, chunks, answer_headers = 0, [], []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, answer_headers
        if message["type"] == "http.response.start":
            status, answer_headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    done.set()
    return status, b"".join(chunks), answer_headers


async def sign_in(app: Any) -> str:
    """The session cookie of the bench's admin."""
    body = json.dumps({"query": LOGIN, "variables": {"e": EMAIL, "p": PASSWORD}}).encode()
    status, answer, headers = await asgi_call(app, body)
    assert status == 200, answer
    assert b'"errors"' not in answer, answer
    cookies = [v.decode().split(";")[0] for k, v in headers if k.lower() == b"set-cookie"]
    assert cookies, headers
    return "; ".join(cookies)


async def admin_list(app: Any, cookie: str) -> dict[str, str]:
    """The admin queries' latencies through the whole app (called directly, as
    ``bench/graphql.py`` does), with the CPU time of this process per call: the server's
    own work (the bench's share is a dict and a few bytes), apart from waiting for the
    database and for a CPU."""

    async def graphql(query: str, **variables: Any) -> bytes:
        body = json.dumps({"query": query, "variables": variables}).encode()
        status, answer, _ = await asgi_call(app, body, cookie)
        assert status == 200, answer[:300]
        assert b'"errors"' not in answer, answer[:300]
        return answer

    def page_of(answer: bytes) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(answer)["data"]["apiKeys"]
        return parsed

    after: str | None = None
    for _ in range(49):  # the cursor of the 49th page leads to the 50th
        after = page_of(await graphql(LIST, first=100, after=after))["pageInfo"]["endCursor"]
    fragment = key_id(123_456 % 900 + 7)
    name = page_of(await graphql(LIST, first=1, search=fragment))["nodes"][0]["name"]
    cases: dict[str, Callable[[], Awaitable[object]]] = {
        "first page": lambda: graphql(LIST, first=100),
        "50th page": lambda: graphql(LIST, first=100, after=after),
        "search: name fragment": lambda: graphql(LIST, first=100, search=name[4:10]),
        "search: full Key ID": lambda: graphql(LIST, first=100, search=fragment),
        "status: DISABLED": lambda: graphql(LIST, first=100, status="DISABLED"),
        "status: EXPIRED": lambda: graphql(LIST, first=100, status="EXPIRED"),
        "expiringWithinDays: 7": lambda: graphql(LIST, first=100, days=7),
        "totalCount": lambda: graphql(COUNT),
    }
    return {
        name: f"{await latencies(call, cpu=True)}  (SQL {await sql_ms(call):6.2f} ms)"
        for name, call in cases.items()
    }


async def first_reminder_check(database_url: str) -> None:
    """The first expiry-reminder check on the keys seeded, timed, before any app starts:
    every server process runs one at its start, and on freshly seeded keys it has some
    23,000 reminders to write at 10^6 (a one-time burst, printed as its own figure, that
    would otherwise run beside the first figures measured)."""
    async with database(database_url, migrate=False):
        started = time.perf_counter()
        sent = await send_expiry_reminders()
        elapsed = time.perf_counter() - started
    print(f"  {'first reminder check':>24}: {sent:,} reminders written in {elapsed:.2f} s")


class _Statements(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.sent: list[tuple[str, list[Any]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        # Tortoise's client logs each statement as ("%s: %s", sql, parameters).
        if isinstance(record.args, tuple) and len(record.args) == 2:
            sql, parameters = record.args
            if isinstance(sql, str) and isinstance(parameters, list | tuple):
                self.sent.append((sql, list(parameters)))


async def sql_ms(call: Callable[[], Awaitable[object]]) -> float:
    """The database's own execution time (EXPLAIN ANALYZE, median of 5) of the statements on
    api_key that ``call`` sends: what the table's size costs, apart from the app's Python."""
    logger = logging.getLogger("tortoise.db_client")
    handler, level = _Statements(), logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        await call()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    total = 0.0
    for sql, parameters in handler.sent:
        if '"api_key"' not in sql or sql.startswith("EXPLAIN"):
            continue
        times = []
        for _ in range(5):
            _, rows = await get_connection("default").execute_query(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + sql, parameters
            )
            plan = rows[0]["QUERY PLAN"]
            times.append((json.loads(plan) if isinstance(plan, str) else plan)[0]["Execution Time"])
        total += statistics.median(times)
    return total


async def cold_basic(verifier: Argon2Verifier, first: int, samples: int = 100) -> str:
    """Basic authentication of ``samples`` keys never seen before (a lookup and argon2 each),
    through the service's middleware and key store, one at a time.

    argon2 runs here at the normal CPU priority: the service runs it at the lowest
    (``wfa_keys.crypto``), where on a loaded machine the wait for a CPU, not the table,
    decides the time.
    """
    app = ApiKeyAuthMiddleware(
        _ok, store=TortoiseKeyStore(), token_store=TortoiseTokenStore(), verifier=verifier
    )
    scopes = iter(scopes_of([basic_header(n) for n in usable_keys(first, samples + 2)]))

    async def one() -> None:
        await drive(app, [next(scopes)])

    return await latencies(one, samples)


# -- The warm cache (the largest size) ------------------------------------------------------


class CountingKeyStore(TortoiseKeyStore):
    """The service's key store, counting lookups (each one a SQL statement)."""

    lookups = 0

    async def get_key(self, key_id: str) -> Any:
        CountingKeyStore.lookups += 1
        return await super().get_key(key_id)


class CountingTokenStore(TortoiseTokenStore):
    """The service's token store, counting lookups."""

    lookups = 0

    async def get_token(self, token_hash: str) -> Any:
        CountingTokenStore.lookups += 1
        return await super().get_token(token_hash)


async def _ok(_scope: Any, _receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def warm_middleware() -> ApiKeyAuthMiddleware:
    """The service's middleware and stores around a trivial app; argon2 at the cheap hash's
    parameters (so that it is never rehashed), records trusted 10 minutes (the service trusts
    them 60 s while its change feed is up: long enough to warm 50,000 keys here)."""
    return ApiKeyAuthMiddleware(
        _ok,
        store=CountingKeyStore(),
        token_store=CountingTokenStore(),
        verifier=Argon2Verifier(time_cost=1, memory_cost_kib=8, parallelism=1),
        caching=Caching(record_ttl=600),
    )


def scopes_of(headers: list[bytes]) -> list[dict[str, Any]]:
    return [
        {
            "type": "http",
            "method": "GET",
            "path": "/whoami",
            "raw_path": b"/whoami",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"authorization", value)],
            "client": ("127.0.0.1", 50000),
        }
        for value in headers
    ]


async def drive(app: Any, scopes: list[dict[str, Any]], concurrency: int = 1) -> float:
    """Send each scope through ``app`` once; requests per second (all must be 200)."""
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.perf_counter()
    if concurrency == 1:
        for scope in scopes:
            await app(scope, receive, send)
    else:
        chunk = max(1, len(scopes) // concurrency)
        await asyncio.gather(
            *(
                _drive_all(app, scopes[i : i + chunk], receive, send)
                for i in range(0, len(scopes), chunk)
            )
        )
    elapsed = time.perf_counter() - started
    refused = [s for s in statuses if s != 200]
    assert not refused, f"{len(refused)} refused ({refused[0]})"
    return len(scopes) / elapsed


async def _drive_all(app: Any, scopes: list[dict[str, Any]], receive: Any, send: Any) -> None:
    for scope in scopes:
        await app(scope, receive, send)


def basic_header(n: int) -> bytes:
    return b"Basic " + base64.b64encode(f"{key_id(n)}:{SECRET}".encode())


async def warm_throughput(tokens: list[str]) -> None:
    """Warm calls over one key, 50,000 keys and 50,000 tokens, one pass each, three rounds;
    ``last_used_at`` is written by the middleware's background task, as in ``serve``."""
    app = warm_middleware()
    async with app.running():
        await _warm_throughput(app, tokens)


async def _warm_throughput(app: ApiKeyAuthMiddleware, tokens: list[str]) -> None:
    # Keys and tokens each measured on their own, after warming them: together they are more
    # distinct credentials than the default Caching.max_warm_entries holds, and alternating
    # over more than an LRU cache holds evicts every entry before its next use.
    one = scopes_of([basic_header(1)] * WARM_KEYS)
    many = scopes_of([basic_header(n) for n in usable_keys(1, WARM_KEYS)])
    by_token = scopes_of([b"Bearer " + t.encode() for t in tokens])
    for name, scopes in ((f"{WARM_KEYS:,} keys", many), (f"{len(tokens):,} tokens", by_token)):
        started = time.perf_counter()
        await drive(app, scopes, concurrency=8)  # each checked once
        print(f"  warmed {name} in {time.perf_counter() - started:.1f} s")
        rates: dict[str, list[float]] = {"1 key": [], name: []}
        lookups = CountingKeyStore.lookups + CountingTokenStore.lookups
        for _ in range(3):
            rates["1 key"].append(await drive(app, one))
            rates[name].append(await drive(app, scopes))
        lookups = CountingKeyStore.lookups + CountingTokenStore.lookups - lookups
        base = statistics.median(rates["1 key"])
        for label, values in rates.items():
            rate = statistics.median(values)
            print(f"  warm {label:>14}: {rate:9.0f} calls/s  ratio to 1 key {rate / base:5.2f}")
        print(f"  store lookups during those warm passes (SQL statements): {lookups}")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def rss_child(database_url: str) -> None:
    """In a process of its own: RSS before and after warming ``RSS_KEYS`` distinct keys."""
    async with database(database_url, migrate=False):
        app = warm_middleware()
        before = rss_mb()
        numbers = usable_keys(1, RSS_KEYS)
        for start in range(0, RSS_KEYS, 10_000):
            chunk = numbers[start : start + 10_000]
            await drive(app, scopes_of([basic_header(n) for n in chunk]), concurrency=8)
        after = rss_mb()
        warm = len(app.authenticator._warm)
        print(
            f"  RSS after warming {RSS_KEYS:,} distinct keys: {after:.0f} MB "
            f"(before: {before:.0f} MB; warm entries kept: {warm:,}, the default "
            f"Caching.max_warm_entries)"
        )


# -- The warm cache over HTTP -------------------------------------------------------------

# Each wrk connection sends the requests of the file named by the script's argument (one
# Authorization header a line) in turn, formatted once beforehand so that wrk's own work is
# the same for one header as for 50,000.
CYCLE_LUA = """
local requests, count, n = {}, 0, 0
function init(args)
  for line in io.lines(args[1]) do
    count = count + 1
    requests[count] = wrk.format("GET", nil, {["Authorization"] = line})
  end
end
function request()
  n = n % count + 1
  return requests[n]
end
"""


@functools.cache
def bench_run() -> Any:
    """bench/run.py's helpers (wrk, CPU pinning, starting a server), loaded from its file:
    this script keeps its own folder off ``sys.path`` (see the top). Loaded once:
    :func:`database_cpu` asks for it around every round."""
    spec = importlib.util.spec_from_file_location("bench_run", Path(__file__).with_name("run.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def counting_serve(counts_path: str, argv: list[str]) -> int:
    """``wfa-keys serve`` (``argv``) with its key and token stores counting lookups and
    writes of last uses, and the garbage collector counting its passes and their time,
    which SIGUSR1 writes to ``counts_path``; argon2 at the cheap hash's parameters (so that
    the 50,000 warm keys are never rehashed to the service's, as :func:`warm_middleware`)."""
    lookups = {"keys": 0, "tokens": 0, "writes": 0, "written": 0}
    lookups |= {"collections": 0, "full_collections": 0, "collecting_us": 0, "full_us": 0}
    collecting_since = [0.0]

    def on_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collecting_since[0] = time.perf_counter()
            return
        took = round((time.perf_counter() - collecting_since[0]) * 1e6)
        lookups["collections"] += 1
        lookups["collecting_us"] += took
        if info["generation"] == 2:
            lookups["full_collections"] += 1
            lookups["full_us"] += took

    get_key, get_token = TortoiseKeyStore.get_key, TortoiseTokenStore.get_token
    record_usage = TortoiseKeyStore.record_usage

    async def counted_key(self: TortoiseKeyStore, key_id: str) -> Any:
        lookups["keys"] += 1
        return await get_key(self, key_id)

    async def counted_token(self: TortoiseTokenStore, token_hash: str) -> Any:
        lookups["tokens"] += 1
        return await get_token(self, token_hash)

    async def counted_usage(self: TortoiseKeyStore, last_used: Any) -> None:
        lookups["writes"] += 1
        lookups["written"] += len(last_used)
        await record_usage(self, last_used)

    def write_counts(_signal: int, _frame: object) -> None:
        partial = Path(counts_path + ".partial")
        partial.write_text(json.dumps(lookups))
        partial.rename(counts_path)

    TortoiseKeyStore.get_key = counted_key  # type: ignore[method-assign]
    TortoiseTokenStore.get_token = counted_token  # type: ignore[method-assign]
    TortoiseKeyStore.record_usage = counted_usage  # type: ignore[method-assign]

    def cheap_hasher(settings: Settings) -> Argon2Verifier:
        del settings  # and at the normal priority: warming is not what this measures
        return Argon2Verifier(time_cost=1, memory_cost_kib=8, parallelism=1)

    api.hasher_for = cheap_hasher  # type: ignore[attr-defined]
    signal.signal(signal.SIGUSR1, write_counts)
    gc.callbacks.append(on_collection)
    return cli.main(argv)


def counts_of(pid: int, counts_path: Path) -> dict[str, int]:
    """The counting server ``pid``'s store lookups so far (``keys``, ``tokens``), its writes
    of last uses (``writes``, of ``written`` keys in all), and its garbage collections
    (``collections``, ``collecting_us``; the full ones: ``full_collections``, ``full_us``)."""
    counts_path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not counts_path.exists():
        if time.monotonic() > deadline:
            raise SystemExit("the server did not report its lookups")
        time.sleep(0.01)
    counts: dict[str, int] = json.loads(counts_path.read_text())
    return counts


@contextmanager
def counting_server(database_url: str, tmp: Path) -> Iterator[Any]:
    """The whole service (``create_app`` under uvicorn, as ``wfa-keys serve`` runs it, request
    log on at INFO into a file) on the server CPU, counting its store lookups."""
    run = bench_run()
    port = run.free_port()
    command = [
        *(sys.executable, __file__, "--counting-serve", str(tmp / "lookups")),
        *("serve", "--host", "127.0.0.1", "--port", str(port), "--database-url", database_url),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFA_")}
    # Records trusted an hour, the most the setting allows: warming 50,000 keys over HTTP on
    # a busy CPU can take longer than warm_middleware's 10 minutes. (The default, 60 s, would
    # re-read each of the 50,000 records once a minute: a lookup per key a minute.)
    env |= {"WFA_LOG_LEVEL": "INFO", "WFA_RECORD_CACHE_TTL": "3600"}
    with (tmp / "serve.log").open("wb") as log, run.running("serve", port, command, env, log) as up:
        yield up


#: Credentials warmed between two vacuums of the throttle table (see warm_over_http).
WARM_CHUNK = 10_000
#: After warming, the seconds the bench waits before its rounds: past the warm-up's own
#: write-behind (the last uses of every key warmed, written within 60 s).
SETTLE_SECONDS = 70


async def warm_over_http(url: str, headers: list[str], database_url: str) -> float:
    """Each header sent once to ``/api/v1/whoami`` (8 at a time); the seconds it took.

    Every cold call adds its attempt to the client address's throttle bucket and deletes it:
    the throttle table is vacuumed every :data:`WARM_CHUNK` credentials, as autovacuum would
    (this machine's PostgreSQL runs without it, and 50,000 dead rows in one bucket slowed
    the warm-up to a fifth of its pace)."""
    started = time.perf_counter()
    limits = httpx2.Limits(max_connections=8)
    conn = await asyncpg.connect(**listener_connect_args(database_url))
    try:
        async with httpx2.AsyncClient(base_url=url, limits=limits, trust_env=False) as client:

            async def worker(pending: Iterator[str]) -> None:
                for header in pending:
                    response = await client.get("/api/v1/whoami", headers={"Authorization": header})
                    assert response.status_code == 200, response.text

            for first in range(0, len(headers), WARM_CHUNK):
                pending = iter(headers[first : first + WARM_CHUNK])
                # Not more: each unverified credential in flight holds one of the 20 attempts
                # that the service's throttling grants a client address at a time.
                await asyncio.gather(*(worker(pending) for _ in range(8)))
                await conn.execute('VACUUM "throttle_slot"')
    finally:
        await conn.close()
    return time.perf_counter() - started


def database_cpu() -> dict[int, float]:
    """The CPU time each PostgreSQL process of this machine has used so far, by process ID
    (the flushes' share of a warm call is spent there, on either CPU: the server is not ours
    to pin)."""
    run = bench_run()
    used = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().startswith(f"{stat.parent.name} (postgres)"):
                pid = int(stat.parent.name)
                used[pid] = run.cpu_seconds(pid)
        except (OSError, ValueError):
            continue  # a process that ended meanwhile
    return used


def database_cpu_since(before: dict[int, float]) -> float:
    """The CPU time PostgreSQL's processes used since ``before`` (:func:`database_cpu`),
    process by process: one that started meanwhile counts all of its time, one that ended
    counts nothing (a sum of totals went below zero when a connection closed in a round)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in database_cpu().items())


#: How often the server writes the call analytics of the keys that called: each round of
#: :func:`http_warm_throughput` lasts this long, then waits as long and a second more.
CALLS_INTERVAL = int(Metering().flush_interval)


def http_warm_throughput(database_url: str, tokens: list[str], rounds: int = 3) -> None:
    """Warm calls over HTTP (wrk, 32 connections, on its own CPU) to ``/api/v1/whoami`` of
    the whole service: one key against 50,000 keys, then one token against 50,000 tokens,
    interleaved rounds, with the store lookups made during those rounds.

    A round pays for writing its own calls' analytics, not for the other case's: each lasts
    one interval of those writes, so that one write (of the calls made since the round
    began) falls within it, and the next round starts once the rest are written."""
    seconds = CALLS_INTERVAL
    run = bench_run()
    binary = run.ensure_tool("wrk")
    keys = [basic_header(n).decode() for n in usable_keys(1, WARM_KEYS)]
    bearers = [f"Bearer {t}" for t in tokens]
    with tempfile.TemporaryDirectory(prefix="wfa-scale-") as name:
        tmp = Path(name)
        (tmp / "cycle.lua").write_text(CYCLE_LUA)
        with counting_server(database_url, tmp) as service:

            def wrk(script: tuple[str, str], duration: int) -> Any:
                path = "/api/v1/whoami"
                return run.wrk(binary, service, path, duration, 32, {}, script=script)

            for one, many in (("1 key", keys), ("1 token", bearers)):
                label = f"{len(many):,} {one.split()[1]}s"
                took = asyncio.run(warm_over_http(service.url, many, database_url))
                print(f"  warmed {label} over HTTP in {took:.1f} s; rounds in {SETTLE_SECONDS} s")
                time.sleep(SETTLE_SECONDS)
                scripts: dict[str, tuple[str, str]] = {}
                for case, lines in ((one, many[:1]), (label, many)):
                    headers = tmp / f"headers{len(scripts)}.txt"
                    headers.write_text("\n".join(lines) + "\n")
                    scripts[case] = (str(tmp / "cycle.lua"), str(headers))

                server = (service.pid, tmp / "lookups")
                before_rounds = counts_of(*server)
                for case in scripts:  # wrk's own warm-up: connections
                    wrk(scripts[case], 1)
                results: dict[str, list[Any]] = {case: [] for case in scripts}
                database_seconds = dict.fromkeys(scripts, 0.0)
                collected = {case: Counter[str]() for case in scripts}
                for _ in range(rounds):
                    for case in scripts:
                        before, collections = database_cpu(), counts_of(*server)
                        results[case].append(wrk(scripts[case], seconds))
                        database_seconds[case] += database_cpu_since(before)
                        collected[case].update(counts_of(*server))
                        collected[case].subtract(collections)
                        time.sleep(CALLS_INTERVAL + 1)
                after_rounds = counts_of(*server)
                made = {name: after_rounds[name] - before_rounds[name] for name in after_rounds}
                for case, runs in results.items():
                    rate = statistics.median(r.rate for r in runs)
                    rates = " ".join(f"{r.rate:.0f}" for r in runs)
                    server = statistics.median(r.cpu_per_request for r in runs) * 1e6
                    database = database_seconds[case] / sum(r.rate * seconds for r in runs) * 1e6
                    print(
                        f"  HTTP warm {case:>14}: {rate:9.0f} req/s (rounds: {rates}); CPU a "
                        f"request: server {server:.1f} us, PostgreSQL {database:.1f} us"
                    )
                    gc_counts, requests = collected[case], sum(r.rate * seconds for r in runs)
                    print(
                        f"  {'garbage collection':>24}: {gc_counts['collecting_us'] / requests:.1f}"
                        f" us a request, {gc_counts['collections']:,} passes, of them "
                        f"{gc_counts['full_collections']} full ({gc_counts['full_us'] / 1e3:,.0f}"
                        " ms in all)"
                    )
                run.print_ratio(results, label, one, f"{label} / {one}")
                calls = sum(r.rate for rs in results.values() for r in rs) * seconds
                lookups = made["keys"] + made["tokens"]
                print(f"  store lookups during those rounds (~{calls:,.0f} calls): {lookups}")
                writes, written = made["writes"], made["written"]
                print(f"  last-use writes during those rounds: {writes:,} ({written:,} keys)")


# -- Cold Basic at two sizes, side by side ----------------------------------------------------


async def cold_child(database_url: str, first: int) -> None:
    """Cold Basic calls and key lookups on demand, for :func:`cold_side_by_side`: a line
    ``basic``, ``lookup`` or ``sql`` on stdin, its time in ms on stdout, each on a key never
    used before (from ``first`` on)."""
    verifier = service_verifier()
    async with database(database_url, migrate=False):
        store = TortoiseKeyStore()
        app = ApiKeyAuthMiddleware(
            _ok, store=store, token_store=TortoiseTokenStore(), verifier=verifier
        )
        # 451 keys for cold_side_by_side's 200 + 200 + 50 calls: of 1,000 keys, 850 are usable.
        numbers = iter(usable_keys(first, 800))
        await drive(app, scopes_of([basic_header(next(numbers))]))  # the first call's setup
        while line := (await asyncio.to_thread(sys.stdin.readline)).strip():
            n = next(numbers)
            if line == "sql":
                elapsed = await sql_ms(functools.partial(store.get_key, key_id(n)))
                print(f"{elapsed:.4f}", flush=True)
                continue
            started = time.perf_counter()
            if line == "basic":
                await drive(app, scopes_of([basic_header(n)]))
            else:
                assert await store.get_key(key_id(n)) is not None
            elapsed = (time.perf_counter() - started) * 1000
            print(f"{elapsed:.4f}", flush=True)


def cold_side_by_side(large_url: str, small_url: str, samples: int = 200) -> None:
    """Cold Basic (argon2 with the service's parameters and a lookup) in the largest database
    and in one of 1,000 keys, one process each on the same CPU, calls alternating between
    them (the order swapped each time): p50 and p99 of each, their differences, the median of
    the paired differences; then the key lookup alone, and its SQL (EXPLAIN ANALYZE)."""
    run = bench_run()
    children: dict[str, subprocess.Popen[str]] = {}
    for label, url, first in (("large", large_url, 0), ("1,000 keys", small_url, 1)):
        size = asyncio.run(table_size(url))
        if label == "large":
            label = f"{size:,} keys"
        children[label] = subprocess.Popen(
            [
                *run.pin(run.SERVER_CPU),
                sys.executable,
                __file__,
                "--database-url",
                url,
                "--cold-child",
                "--cold-first",
                str(first or size - 1000 + 1),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
    try:
        for command, count in (("basic", samples), ("lookup", samples), ("sql", 50)):
            times: dict[str, list[float]] = {label: [] for label in children}
            for i in range(count):
                for label in list(children) if i % 2 == 0 else list(children)[::-1]:
                    child = children[label]
                    assert child.stdin is not None
                    assert child.stdout is not None
                    child.stdin.write(command + "\n")
                    child.stdin.flush()
                    times[label].append(float(child.stdout.readline()))
            large, small = (times[label] for label in children)
            differences = [a - b for a, b in zip(large, small, strict=True)]
            for label, values in times.items():
                p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
                print(f"  cold {command:>6}, {label:>14}: p50 {p50:7.3f} ms  p99 {p99:7.3f} ms")
            p50 = percentile(large, 0.5) - percentile(small, 0.5)
            p99 = percentile(large, 0.99) - percentile(small, 0.99)
            paired = statistics.median(differences)
            print(
                f"  cold {command:>6}, {'difference':>14}: p50 {p50:+7.3f} ms  p99 {p99:+7.3f} ms"
                f"  (median of the {count} paired differences {paired:+7.3f} ms)",
                flush=True,
            )
    finally:
        for child in children.values():
            assert child.stdin is not None
            child.stdin.close()
            child.wait(timeout=60)


async def table_size(database_url: str) -> int:
    conn = await asyncpg.connect(**listener_connect_args(database_url))
    try:
        size: int = await conn.fetchval("SELECT count(*) FROM api_key")
        return size
    finally:
        await conn.close()


# -- The sweep and the start --------------------------------------------------------------


async def sweep(conn: Any) -> None:
    """The inactivity sweep with a 90-day limit, while key lookups run beside it."""
    await conn.execute("UPDATE organization SET key_inactivity_days = 90")
    store = TortoiseKeyStore()
    lookups: list[float] = []
    done = asyncio.Event()

    async def lookup_meanwhile() -> None:
        n = 1
        while not done.is_set():
            started = time.perf_counter()
            await store.get_key(key_id(n))
            lookups.append((time.perf_counter() - started) * 1000)
            n += 7
            await asyncio.sleep(0.01)

    beside = asyncio.create_task(lookup_meanwhile())
    started = time.perf_counter()
    disabled = await disable_inactive_keys()
    elapsed = time.perf_counter() - started
    done.set()
    await beside
    changes = await conn.fetchval("SELECT count(*) FROM key_change")
    print(
        f"  inactivity sweep: {len(disabled):,} keys disabled in {elapsed:.1f} s "
        f"({changes} change rows and notifications); key lookups meanwhile: "
        f"p50 {percentile(lookups, 0.5):.1f} ms, max {max(lookups):.1f} ms"
    )


def serve_start(database_url: str) -> None:
    """Seconds from starting ``wfa-keys serve`` to its first 200 on ``/healthz``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFA_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "middleware"), env.get("PYTHONPATH", "")])
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "wfa-keys"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--database-url",
            database_url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        assert process.stdout is not None
        url = ""
        while not url:
            line = process.stdout.readline().decode()
            if not line:
                raise SystemExit("wfa-keys serve exited")
            if line.startswith("Serving on "):
                url = line.split()[-1]
        deadline = started + 60
        while time.perf_counter() < deadline:
            try:
                if httpx2.get(url + "/healthz", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            time.sleep(0.02)
        print(f"  serve: /healthz answered {time.perf_counter() - started:.2f} s after the start")
    finally:
        process.terminate()
        process.wait(timeout=10)


# -- The run ------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


async def run(database_url: str, sizes: list[int], small_url: str | None) -> None:
    for url in (database_url, small_url) if small_url else (database_url,):
        async with database(url):  # migrated
            pass
    settings = Settings(database_url=database_url)
    real_hash = service_verifier()
    cheap_hash = Argon2Verifier(time_cost=1, memory_cost_kib=8, parallelism=1).hash(SECRET)
    password_hash = real_hash.hash(PASSWORD)
    secret_hash = real_hash.hash(SECRET)
    conn = await asyncpg.connect(**listener_connect_args(database_url))
    try:
        for size in sizes:
            started = time.perf_counter()
            await seed(conn, size, cheap_hash, secret_hash, password_hash)
            print(f"\n{size:,} keys (seeded in {time.perf_counter() - started:.1f} s)", flush=True)
            largest = size == max(sizes)
            tokens = await seed_tokens(conn, min(WARM_KEYS, size), cheap_hash) if largest else []
            await first_reminder_check(database_url)
            app = create_app(settings)
            async with app.router.lifespan_context(app):
                for name, figure in (await admin_list(app, await sign_in(app))).items():
                    print(f"  {name:>24}: {figure}", flush=True)
                cold = await cold_basic(real_hash, size - 300)
                print(f"  {'cold Basic (argon2)':>24}: {cold}", flush=True)
                if largest and size >= WARM_KEYS:
                    await warm_throughput(tokens)
            if largest and size >= WARM_KEYS:
                await asyncio.to_thread(
                    http_warm_throughput, database_url, tokens, rounds=HTTP_ROUNDS
                )
            if largest and size >= RSS_KEYS:
                await asyncio.to_thread(rss, database_url)
            if largest and small_url is not None:
                small = await asyncpg.connect(**listener_connect_args(small_url))
                try:
                    await seed(small, 1000, cheap_hash, secret_hash, password_hash)
                finally:
                    await small.close()
                await asyncio.to_thread(cold_side_by_side, database_url, small_url)
            if largest:
                await asyncio.to_thread(serve_start, database_url)
                async with database(database_url, migrate=False):
                    await sweep(conn)
    finally:
        await conn.close()


async def seed_only(database_url: str, size: int) -> None:
    """Empty the database and seed ``size`` keys, for ``--reuse``."""
    async with database(database_url):  # migrated
        pass
    real_hash = service_verifier()
    cheap_hash = Argon2Verifier(time_cost=1, memory_cost_kib=8, parallelism=1).hash(SECRET)
    conn = await asyncpg.connect(**listener_connect_args(database_url))
    try:
        started = time.perf_counter()
        await seed(conn, size, cheap_hash, real_hash.hash(SECRET), real_hash.hash(PASSWORD))
        print(f"{size:,} keys seeded in {time.perf_counter() - started:.1f} s", flush=True)
    finally:
        await conn.close()


#: What ``--reuse`` measures, in this order, unless ``--parts`` names fewer.
PARTS = ("list", "warm", "http", "rss", "cold", "start", "sweep")


async def reuse(database_url: str, parts: set[str], small_url: str | None) -> None:
    """The admin list and the largest size's tail (``parts`` of :data:`PARTS`) on the keys
    already seeded, after the first expiry-reminder check."""
    if "cold" in parts and small_url is None:
        raise SystemExit("--parts cold needs --small-database-url (a database of 1,000 keys)")
    conn = await asyncpg.connect(**listener_connect_args(database_url))
    try:
        cheap_hash = await conn.fetchval(
            "SELECT secret_hash FROM api_key WHERE key_id = $1", key_id(1)
        )
        await reset_as_seeded(conn)
        size = await conn.fetchval("SELECT count(*) FROM api_key")
        print(f"\n{size:,} keys (seeded before)", flush=True)
        await first_reminder_check(database_url)
        if "list" in parts:
            app = create_app(Settings(database_url=database_url))
            async with app.router.lifespan_context(app):
                for name, figure in (await admin_list(app, await sign_in(app))).items():
                    print(f"  {name:>24}: {figure}", flush=True)
        tokens: list[str] = []
        if parts & {"warm", "http"}:
            await conn.execute("DELETE FROM access_token")
            tokens = await seed_tokens(conn, WARM_KEYS, cheap_hash)
        if "warm" in parts:
            async with database(database_url, migrate=False):
                await warm_throughput(tokens)
        if "http" in parts:
            await asyncio.to_thread(http_warm_throughput, database_url, tokens, rounds=HTTP_ROUNDS)
        if "rss" in parts:
            await asyncio.to_thread(rss, database_url)
        if "cold" in parts and small_url is not None:
            await asyncio.to_thread(cold_side_by_side, database_url, small_url)
        if "start" in parts:
            await asyncio.to_thread(serve_start, database_url)
        if "sweep" in parts:
            async with database(database_url, migrate=False):
                await sweep(conn)
    finally:
        await conn.close()


def rss(database_url: str) -> None:
    """:func:`rss_child` in a process of its own."""
    subprocess.run(
        [
            *(sys.executable, __file__, "--database-url", database_url),
            *("--rss-child", "--rss-keys", str(RSS_KEYS)),
        ],
        check=True,
    )


#: The tables a run updates, vacuumed before the next (see reset_as_seeded).
VACUUMED = (
    "api_key",
    "throttle_slot",
    "key_network",
    "key_usage",
    "key_usage_day",
    "key_usage_week",
    "organization_usage_hour",
)


async def reset_as_seeded(conn: Any) -> None:
    """Every key enabled and used as :data:`SEED` made it, no attempt throttled, no inactivity
    limit (undoing a sweep and the bench's own uses: with the limit :func:`sweep` set, every
    app started would begin disabling 400,000 keys beside what is measured)."""
    await conn.execute("UPDATE organization SET key_inactivity_days = NULL")
    await conn.execute(
        "UPDATE api_key SET enabled = substr(key_id, 6)::bigint % 10 <> 9, "
        "last_used_at = CASE WHEN substr(key_id, 6)::bigint % 5 < 2 "
        "THEN now() - interval '200 days' ELSE now() - interval '1 day' END"
    )
    await conn.execute("DELETE FROM key_change")
    await conn.execute("DELETE FROM throttle_slot")  # a failed run's attempts
    # What autovacuum would have done since the last run (a server may run without it:
    # the development machine's does): dead rows of the last run's flushes and attempts.
    for table in VACUUMED:
        await conn.execute(f'VACUUM ANALYZE "{table}"')


async def resweep(database_url: str) -> None:
    """The sweep alone again, on the keys as seeded."""
    conn = await asyncpg.connect(**listener_connect_args(database_url))
    try:
        await reset_as_seeded(conn)
        async with database(database_url, migrate=False):
            await sweep(conn)
    finally:
        await conn.close()


def main() -> None:
    if sys.argv[1:2] == ["--counting-serve"]:  # the server of http_warm_throughput
        raise SystemExit(counting_serve(sys.argv[2], sys.argv[3:]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="postgres://... (emptied)")
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--warm-keys", type=int, default=50_000)
    parser.add_argument("--rss-keys", type=int, default=200_000)
    parser.add_argument("--http-rounds", type=int, default=3, help="rounds of --parts http")
    parser.add_argument(
        "--reuse", action="store_true", help="the list and the tail again, on the keys seeded"
    )
    parser.add_argument(
        "--resweep", action="store_true", help="the sweep alone, on the keys seeded"
    )
    parser.add_argument(
        "--seed-only", action="store_true", help="seed the last size, then stop (for the above)"
    )
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"with --reuse, which of {','.join(PARTS)} (default: all)",
    )
    parser.add_argument(
        "--small-database-url",
        help="postgres://... (emptied): 1,000 keys, for cold Basic side by side with the largest",
    )
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cold-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cold-first", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    global WARM_KEYS, RSS_KEYS, HTTP_ROUNDS
    WARM_KEYS, RSS_KEYS, HTTP_ROUNDS = args.warm_keys, args.rss_keys, args.http_rounds
    if args.seed_only:
        asyncio.run(seed_only(args.database_url, int(args.sizes.split(",")[-1])))
        return
    if args.reuse:
        parts = set(args.parts.split(","))
        if parts - set(PARTS):
            parser.error(f"--parts: unknown {', '.join(sorted(parts - set(PARTS)))}")
        asyncio.run(reuse(args.database_url, parts, args.small_database_url))
        return
    if args.resweep:
        asyncio.run(resweep(args.database_url))
        return
    if args.rss_child:
        asyncio.run(rss_child(args.database_url))
        return
    if args.cold_child:
        asyncio.run(cold_child(args.database_url, args.cold_first))
        return
    sizes = [int(size) for size in args.sizes.split(",")]
    asyncio.run(run(args.database_url, sizes, args.small_database_url))


if __name__ == "__main__":
    main()
