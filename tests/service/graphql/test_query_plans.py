"""Every admin query shape of ``apiKeys`` reads an index at 100,000 keys, never the table.

PostgreSQL only (the plans are PostgreSQL's; CI's PostgreSQL pass runs it). The keys are
seeded by one SQL statement; the statements are those the app sends, captured from
Tortoise's client log while a signed-in admin runs each query, and explained with their
parameters. A later change to a query or an index that brings a sequential scan of
``api_key`` back fails here (see docs/scale.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from tortoise.connection import get_connection

from support.gql import Api
from wfa_keys.graphql.pagination import encode_cursor
from wfa_keys.models import ApiKey, User

KEYS = 100_000

LIST = """query Keys($after: String, $search: String, $status: ApiKeyStatus, $days: Int) {
  apiKeys(first: 100, after: $after, search: $search, status: $status,
          expiringWithinDays: $days) { nodes { id name status owner { email } } } }"""
COUNT = """query Count($search: String, $status: ApiKeyStatus, $days: Int) {
  apiKeys(first: 1, search: $search, status: $status, expiringWithinDays: $days) {
    totalCount } }"""

# One statement: as bench/scale.py seeds, two keys a minute, a tenth disabled, a third never
# expiring, the rest expiring from 35 days ago to a year ahead.
SEED = """
INSERT INTO api_key (key_id, name, secret_hash, enabled, created_at, expires_at, scopes,
                     allowed_cidrs, owner_id, organization_id)
SELECT 'wfak_' || lpad(i::text, 20, '0'), 'svc ' || substr(md5(i::text), 1, 12), 'unused',
       i % 10 <> 9, $3::timestamptz - make_interval(mins => i / 2),
       CASE WHEN i % 3 = 0 THEN NULL
            ELSE $3::timestamptz + make_interval(days => ((i::bigint * 7919) % 400 - 35)::int)
       END,
       '["workflows:read"]', '[]', $1, $2
FROM generate_series(1, $4) AS i
"""


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


@contextmanager
def statements() -> Iterator[_Statements]:
    """The statements Tortoise sends meanwhile, with their parameters."""
    logger = logging.getLogger("tortoise.db_client")
    handler = _Statements()
    saved = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _plan_of(sql: str, parameters: list[Any]) -> list[dict[str, Any]]:
    _, rows = await get_connection("default").execute_query(
        "EXPLAIN (FORMAT JSON) " + sql, parameters
    )
    plan = rows[0]["QUERY PLAN"]
    return list(_nodes((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]))


async def _seed(email: str) -> str:
    """``KEYS`` keys in the admin's organization; a cursor 5,000 keys deep."""
    admin = await User.get(email=email)
    await get_connection("default").execute_query(
        SEED, [admin.id, admin.organization_id, datetime.now(UTC), KEYS]
    )
    # As autovacuum leaves a table: statistics and the visibility map up to date.
    await get_connection("default").execute_script("VACUUM ANALYZE api_key")
    deep = await ApiKey.all().order_by("-created_at", "-id").offset(5000).first()
    assert deep is not None
    return encode_cursor(deep.created_at, deep.id)


async def test_each_admin_query_shape_reads_an_index_of_api_key_never_the_table(
    admin: Api, database_url: str
) -> None:
    if not database_url.startswith("postgres"):
        pytest.skip("query plans are PostgreSQL's (CI's PostgreSQL pass runs this)")
    deep = await _seed("admin@acme.example")
    shapes: dict[str, tuple[str, dict[str, Any]]] = {
        "first page": (LIST, {}),
        "a page 5,000 keys deep": (LIST, {"after": deep}),
        "search by a name fragment": (LIST, {"search": "3b5c1"}),
        "search by a full Key ID": (LIST, {"search": "WFAK_00000000000000000907"}),
        "status DISABLED": (LIST, {"status": "DISABLED"}),
        "status EXPIRED": (LIST, {"status": "EXPIRED"}),
        "status ACTIVE": (LIST, {"status": "ACTIVE"}),
        "expiring within 7 days": (LIST, {"days": 7}),
        "totalCount": (COUNT, {}),
        "totalCount of the disabled": (COUNT, {"status": "DISABLED"}),
        "totalCount expiring within 7 days": (COUNT, {"days": 7}),
    }
    _, rows = await get_connection("default").execute_query(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'api_key'"
    )
    indexes = {row["indexname"] for row in rows}
    for shape, (query, variables) in shapes.items():
        with statements() as sent:
            body = await admin(query, **variables)
        assert "errors" not in body, (shape, body)
        on_keys = [
            (sql, parameters)
            for sql, parameters in sent.sent
            if '"api_key"' in sql and not sql.startswith("EXPLAIN")
        ]
        assert on_keys, f"{shape}: no statement on api_key was captured"
        for sql, parameters in on_keys:
            nodes = await _plan_of(sql, parameters)
            scans = [n["Node Type"] for n in nodes if n.get("Relation Name") == "api_key"]
            used = {n["Index Name"] for n in nodes if "Index Name" in n} & indexes
            assert "Seq Scan" not in scans, f"{shape}: {scans} for {sql}"
            assert used, f"{shape}: no index of api_key in {scans} for {sql}"


async def test_a_total_above_ten_thousand_is_the_planners_estimate_and_below_it_exact(
    admin: Api, database_url: str
) -> None:
    if not database_url.startswith("postgres"):
        pytest.skip("the estimate is PostgreSQL's (CI's PostgreSQL pass runs this)")
    await _seed("admin@acme.example")

    with statements() as sent:
        everything = (await admin(COUNT))["data"]["apiKeys"]["totalCount"]
    assert any(sql.startswith("EXPLAIN") for sql, _ in sent.sent)
    with statements() as sent:
        few = (await admin(COUNT, search="wfak_0000000000000000012"))["data"]["apiKeys"][
            "totalCount"
        ]
    assert not any(sql.startswith("EXPLAIN") for sql, _ in sent.sent)

    # Fresh statistics of one organization's table: the estimate is close, never below the
    # 10,001 rows actually counted.
    assert everything > 10_000
    assert abs(everything - KEYS) <= KEYS // 10
    assert few == 10  # keys 120..129: exact
