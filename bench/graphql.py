"""The admin API against its data, and key creation against the health check.

1. ``apiKeys(first: 100)`` (every field of a key, its owner and organization, the page info
   and ``totalCount``) through the whole app, as a signed-in admin, against a plain Starlette
   endpoint that runs the same two statements (count, page) by hand and returns the same JSON,
   byte for byte (checked before measuring). 10,000 keys in the admin's organization and 1,000
   in another, seeded with bulk inserts. The two alternate in rounds of ``--seconds`` each; it
   prints requests per second, CPU milliseconds per request and the ratio (median of the
   per-round ratios), and the number of SQL statements each runs for a page of 10 and of 100.
2. Eight clients create keys without pause for ``--seconds`` while one client calls
   ``/healthz`` one request after another: its latency (p50, p99) against the same probe with
   no other load, measured just before. Argon2 runs on threads: this shows whether the event
   loop stays free for everyone else meanwhile.

Everything runs in this process, on one event loop, with ASGI calls made directly (no HTTP
client, no sockets), so the figures are the server's own cost:

    .venv/bin/python bench/graphql.py                      # a SQLite file, about 60 s
    .venv/bin/python bench/graphql.py --database-url postgres://postgres@127.0.0.1:5432/wfa_perf_bench

The PostgreSQL database is emptied first: give it one of its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file would shadow the graphql-core package it shares its name with.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse
import asyncio
import json
import logging
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message
from tortoise.connection import get_connection

from wfa_auth import generate_key_id
from wfa_keys.app import create_app
from wfa_keys.graphql.pagination import encode_cursor
from wfa_keys.models import AccessToken, ApiKey, AuditEvent, KeyChange, Organization, Session, User
from wfa_keys.models import Role as UserRole
from wfa_keys.settings import Settings
from wfa_keys.users import create_user

KEYS, OTHER_KEYS, PAGE = 10_000, 1_000, 100
EMAIL, PASSWORD = "bench@acme.example", "a bench password"
CREATORS = 8

LIST = """query Keys($first: Int!) { apiKeys(first: $first) {
  totalCount
  pageInfo { hasNextPage endCursor }
  nodes { id name enabled status createdAt expiresAt lastUsedAt secretRegeneratedAt
    lastUsedIp previousSecretExpiresAt scopes allowedCidrs
    owner { id email role organization { id name hasWorkflowAutomation keyInactivityDays } }
  } } }"""
CREATE = 'mutation { createApiKey(input: {name: "bench"}) { keySecret } }'

COUNT_SQL = 'SELECT COUNT(*) "n" FROM "api_key" WHERE "organization_id"={p1}'
PAGE_SQL = """SELECT k."id", k."key_id", k."name", k."enabled", k."created_at", k."expires_at",
  k."last_used_at", k."secret_regenerated_at", k."last_used_ip", k."previous_secret_expires_at",
  k."scopes", k."allowed_cidrs", k."owner_id", u."email", u."role",
  o."id" "organization_id", o."name" "organization_name", o."has_workflow_automation",
  o."key_inactivity_days"
FROM "api_key" k JOIN "user" u ON u."id" = k."owner_id"
  JOIN "organization" o ON o."id" = u."organization_id"
WHERE k."organization_id"={p1} ORDER BY k."created_at" DESC, k."id" DESC LIMIT {p2}"""


# -- Calling an ASGI app directly -------------------------------------------------------


async def call(
    app: ASGIApp, method: str, path: str, body: bytes = b"", cookie: str | None = None
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """One request through ``app``; the status, body and headers of its answer."""
    headers = [
        (b"host", b"bench"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if cookie is not None:
        headers.append((b"cookie", cookie.encode()))
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("bench", 80),
    }
    delivered = False
    done = asyncio.Event()
    status, chunks, response_headers = 0, [], []

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status, response_headers
        if message["type"] == "http.response.start":
            status, response_headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    done.set()
    return status, b"".join(chunks), response_headers


def graphql_body(query: str, **variables: Any) -> bytes:
    return json.dumps({"query": query, "variables": variables}).encode()


# -- The plain endpoint -----------------------------------------------------------------


def as_utc(value: Any) -> str | None:
    """A stored time as the API writes it (SQLite returns text, PostgreSQL datetimes)."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return str(moment.astimezone(UTC).isoformat())


def as_list(value: Any) -> list[str]:
    """A JSON list column (text on SQLite and from asyncpg without a codec)."""
    loaded = json.loads(value) if isinstance(value, str | bytes) else value
    return list(loaded or [])


def plain_endpoint(organization_id: str) -> Callable[[Request], Awaitable[Response]]:
    """The same page as ``apiKeys(first: N)`` with every field, by hand."""
    # By dialect: the service's PostgreSQL client is its own class (wfa_keys.pgclient).
    postgres = get_connection("default").capabilities.dialect == "postgres"
    p1, p2 = ("$1", "$2") if postgres else ("?", "?")
    count_sql = COUNT_SQL.format(p1=p1)
    page_sql = PAGE_SQL.format(p1=p1, p2=p2)

    async def endpoint(request: Request) -> Response:
        first = int(request.query_params.get("first", PAGE))
        connection = get_connection("default")
        total = (await connection.execute_query_dict(count_sql, [organization_id]))[0]["n"]
        rows = await connection.execute_query_dict(page_sql, [organization_id, first + 1])
        now = datetime.now(UTC)
        nodes = []
        for row in rows[:first]:
            expires = as_utc(row["expires_at"])
            if expires is not None and datetime.fromisoformat(expires) <= now:
                status = "EXPIRED"
            else:
                status = "ACTIVE" if row["enabled"] else "DISABLED"
            grace = as_utc(row["previous_secret_expires_at"])
            if grace is not None and datetime.fromisoformat(grace) <= now:
                grace = None
            nodes.append(
                {
                    "id": row["key_id"],
                    "name": row["name"],
                    "enabled": bool(row["enabled"]),
                    "status": status,
                    "createdAt": as_utc(row["created_at"]),
                    "expiresAt": expires,
                    "lastUsedAt": as_utc(row["last_used_at"]),
                    "secretRegeneratedAt": as_utc(row["secret_regenerated_at"]),
                    "lastUsedIp": row["last_used_ip"],
                    "previousSecretExpiresAt": grace,
                    "scopes": as_list(row["scopes"]),
                    "allowedCidrs": as_list(row["allowed_cidrs"]),
                    "owner": {
                        "id": str(row["owner_id"]),
                        "email": row["email"],
                        "role": row["role"].upper(),
                        "organization": {
                            "id": str(row["organization_id"]),
                            "name": row["organization_name"],
                            "hasWorkflowAutomation": bool(row["has_workflow_automation"]),
                            "keyInactivityDays": row["key_inactivity_days"],
                        },
                    },
                }
            )
        last = rows[first - 1] if len(rows) >= first else (rows[-1] if rows else None)
        cursor = None
        if last is not None:
            created = as_utc(last["created_at"])
            assert created is not None
            cursor = encode_cursor(datetime.fromisoformat(created), last["id"])
        data = {
            "data": {
                "apiKeys": {
                    "totalCount": total,
                    "pageInfo": {"hasNextPage": len(rows) > first, "endCursor": cursor},
                    "nodes": nodes,
                }
            }
        }
        return Response(json.dumps(data, separators=(",", ":")), media_type="application/json")

    return endpoint


# -- Seeding ----------------------------------------------------------------------------


# -- Counting statements ----------------------------------------------------------------


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


@contextmanager
def counting_statements() -> Iterator[_Counter]:
    """Counts the statements Tortoise sends (its client logs each one at DEBUG)."""
    logger = logging.getLogger("tortoise.db_client")
    counter = _Counter()
    saved = (logger.level, logger.propagate)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(counter)
    try:
        yield counter
    finally:
        logger.removeHandler(counter)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


# -- Measuring --------------------------------------------------------------------------


async def rate(request: Callable[[], Awaitable[object]], seconds: float) -> tuple[float, float]:
    """Requests per second and CPU milliseconds per request, one request at a time."""
    count, started, cpu = 0, time.perf_counter(), time.process_time()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        await request()
        count += 1
    elapsed, cpu_used = time.perf_counter() - started, time.process_time() - cpu
    return count / elapsed, cpu_used * 1000 / count


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def probe(app: ASGIApp, until: float) -> list[float]:
    """``/healthz`` latencies in milliseconds, one call after another until ``until``."""
    latencies = []
    while time.perf_counter() < until:
        started = time.perf_counter()
        status, _, _ = await call(app, "GET", "/healthz")
        latencies.append((time.perf_counter() - started) * 1000)
        assert status == 200, status
        await asyncio.sleep(0.001)  # a client's pace, not a flood
    return latencies


async def run(database_url: str, rounds: int, seconds: float) -> None:
    settings = Settings(database_url=database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        admin = await seed_keys()
        cookie = await login(app)
        plain = Starlette(
            routes=[Route("/keys", plain_endpoint(str(admin.organization_id)), methods=["GET"])]
        )

        async def through_graphql(first: int = PAGE) -> bytes:
            status, body, _ = await call(
                app, "POST", "/graphql", graphql_body(LIST, first=first), cookie
            )
            assert status == 200, body[:300]
            return body

        async def by_hand(first: int = PAGE) -> bytes:
            status, body, _ = await call(plain, "GET", f"/keys?first={first}")
            assert status == 200, body[:300]
            return body

        for first in (10, PAGE):
            expected, got = await by_hand(first), await through_graphql(first)
            if expected != got:
                raise SystemExit(f"the bodies differ:\n{got[:400]!r}\n{expected[:400]!r}")
            with counting_statements() as counter:
                await through_graphql(first)
            graphql_statements = counter.count
            with counting_statements() as counter:
                await by_hand(first)
            print(
                f"first={first}: identical bodies ({len(got)} bytes); statements: "
                f"apiKeys {graphql_statements}, plain {counter.count}"
            )

        results: dict[str, list[tuple[float, float]]] = {"apiKeys": [], "plain": []}
        for round_number in range(1, rounds + 1):
            for name, request in (("apiKeys", through_graphql), ("plain", by_hand)):
                results[name].append(await rate(request, seconds))
                per_second, cpu_ms = results[name][-1]
                print(
                    f"round {round_number} {name:>7}: {per_second:8.1f} req/s "
                    f"{cpu_ms:6.2f} ms CPU/request",
                    flush=True,
                )
        ratios = [g[0] / p[0] for g, p in zip(results["apiKeys"], results["plain"], strict=True)]
        print(
            f"ratio apiKeys(first: {PAGE}) / plain endpoint: {statistics.median(ratios):.3f} "
            f"(median of rounds; rounds: {' '.join(f'{r:.3f}' for r in ratios)})"
        )

        await creation_against_health(app, seconds)


async def seed_keys() -> User:
    """Empty tables, the admin, its 10,000 keys and another organization's 1,000."""
    for model in (AuditEvent, AccessToken, Session, ApiKey, User, Organization, KeyChange):
        await model.all().delete()
    admin = await create_user(
        Settings(), email=EMAIL, password=PASSWORD, organization="Acme", role=UserRole.ADMIN
    )
    other = await create_user(
        Settings(),
        email="other@globex.example",
        password=PASSWORD,
        organization="Globex",
        role=UserRole.ADMIN,
    )
    start = datetime.now(UTC) - timedelta(days=400)
    for owner, count in ((admin, KEYS), (other, OTHER_KEYS)):
        await ApiKey.bulk_create([key_row(owner, n, start) for n in range(count)], batch_size=1000)
    return admin


def key_row(owner: User, n: int, start: datetime) -> ApiKey:
    """Key ``n``: some disabled, some expired, some expiring later, some used, some in a
    grace period, some with fewer scopes or an allow-list."""
    expires_at = None
    if n % 11 == 0:
        expires_at = start + timedelta(days=30)
    elif n % 13 == 0:
        expires_at = start + timedelta(days=800)
    return ApiKey(
        key_id=generate_key_id(),
        name=f"key {n} of {owner.email}",
        secret_hash="$argon2id$v=19$m=19456,t=2,p=1$" + uuid.uuid4().hex,
        enabled=n % 7 != 0,
        created_at=start + timedelta(minutes=n),
        expires_at=expires_at,
        last_used_at=start + timedelta(minutes=n, seconds=30) if n % 3 == 0 else None,
        last_used_ip=f"192.0.2.{n % 250}" if n % 3 == 0 else None,
        previous_secret_hash="$argon2id$v=19$m=19456,t=2,p=1$old" if n % 17 == 0 else None,
        previous_secret_expires_at=start + timedelta(days=800) if n % 17 == 0 else None,
        scopes=["workflows:read", "workflows:write"] if n % 5 else ["workflows:read"],
        allowed_cidrs=["203.0.113.0/24", "2001:db8::/32"] if n % 19 == 0 else [],
        owner=owner,
        organization_id=owner.organization_id,
    )


async def login(app: ASGIApp) -> str:
    """Signs the admin in through GraphQL; the session cookie (``name=value``)."""
    query = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { email } }"
    status, body, headers = await call(
        app, "POST", "/graphql", graphql_body(query, e=EMAIL, p=PASSWORD)
    )
    assert status == 200, body
    assert b"errors" not in body, body
    for name, value in headers:
        if name == b"set-cookie":
            return value.decode().split(";", 1)[0]
    raise SystemExit("the login set no cookie")


async def creation_against_health(app: ASGIApp, seconds: float) -> None:
    """``/healthz`` latency alone, then while eight clients create keys without pause."""
    cookie = await login(app)
    quiet = await probe(app, time.perf_counter() + seconds)
    created = 0
    until = time.perf_counter() + seconds

    async def creator() -> None:
        nonlocal created
        while time.perf_counter() < until:
            status, body, _ = await call(app, "POST", "/graphql", graphql_body(CREATE), cookie)
            assert status == 200, body[:300]
            assert b"keySecret" in body, body[:300]
            created += 1

    busy = (await asyncio.gather(probe(app, until), *(creator() for _ in range(CREATORS))))[0]
    assert busy is not None
    for name, latencies in (("alone", quiet), (f"{CREATORS} creating keys", busy)):
        print(
            f"/healthz {name:>18}: p50 {percentile(latencies, 0.5):6.1f} ms, "
            f"p99 {percentile(latencies, 0.99):6.1f} ms, {len(latencies) / seconds:6.0f} req/s"
        )
    print(f"keys created meanwhile: {created} ({created / seconds:.1f}/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="default: a new SQLite file")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    os.environ.pop("WFA_DATABASE_URL", None)
    if args.database_url:
        asyncio.run(run(args.database_url, args.rounds, args.seconds))
        return
    with tempfile.TemporaryDirectory(prefix="wfa-bench-") as tmp:
        url = f"sqlite://{Path(tmp) / 'bench.sqlite3'}"
        asyncio.run(run(url, args.rounds, args.seconds))


if __name__ == "__main__":
    main()
