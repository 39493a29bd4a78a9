"""Keyset pagination, newest first, over models with ``created_at`` and an integer ``id``.

The cursor is opaque to clients (base64 of the last row's creation time and ID): a page
is found by an indexed range query, not by an offset, so it stays cheap and stable while
rows are added. A page is fetched as plain rows of the listed columns (``.values()``): no
model objects, and no column the API does not show (secret hashes stay in the database).
The total is counted only when a client asks for it (:attr:`Page.count`): exactly up to
:data:`EXACT_COUNT_LIMIT` rows, and above that, on PostgreSQL, estimated by the planner from
the table's statistics (an exact count of a million rows reads a million index entries, about
150 ms on a loaded two-core machine, on every load of the console).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.connection import get_connection
from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from wfa_keys.graphql.errors import BadUserInput
from wfa_keys.limits import MAX_PAGE_SIZE

Row = dict[str, Any]
Count = Callable[[], Awaitable[int]]

#: Up to this many matching rows a total is exact; above it, PostgreSQL's estimate.
EXACT_COUNT_LIMIT = 10_000

_CURSOR_PREFIX = "v1|"
_MAX_CURSOR_LENGTH = 200


@dataclass(frozen=True)
class Page:
    """One page of rows with what the client needs to ask for the next one.

    ``count()`` counts every row the query matches, on every page; it runs a query, so call
    it only when the total is asked for.
    """

    rows: list[Row]
    has_next_page: bool
    end_cursor: str | None
    count: Count


def encode_cursor(created_at: datetime, row_id: int) -> str:
    """The cursor that points just after a row."""
    raw = f"{_CURSOR_PREFIX}{created_at.isoformat()}|{row_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "after") -> tuple[datetime, int]:
    """The (created_at, id) a cursor points after; BAD_USER_INPUT when it is not ours."""
    error = BadUserInput(field, "The cursor is not valid: use a pageInfo.endCursor.")
    if not cursor or len(cursor) > _MAX_CURSOR_LENGTH:
        raise error
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, created, row_id = raw.split("|")
        if prefix + "|" != _CURSOR_PREFIX:
            raise ValueError(prefix)
        created_at = datetime.fromisoformat(created)
        pk = int(row_id)
        if created_at.tzinfo is None:
            raise ValueError(created)
        # In UTC, as stored: a time that is valid in its own offset but not in UTC (year 0 or
        # 10000, such as 9999-12-31T23:59:59-14:00) is refused here, not by the database.
        created_at = created_at.astimezone(UTC)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise error from None
    if not 0 < pk < 2**63:
        raise error
    return created_at, pk


def check_page_size(first: int, field: str = "first") -> None:
    """Pages hold 1 to 100 rows."""
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise BadUserInput(field, f"{field} must be between 1 and {MAX_PAGE_SIZE}.")


async def newest_first(
    query: QuerySet[Any], *, fields: Sequence[str], first: int, after: str | None
) -> Page:
    """The page of ``query`` of at most ``first`` rows, newest first, after ``after``.

    Each row is a dict of ``fields`` (which must include ``id`` and ``created_at``).
    """
    check_page_size(first)
    position = decode_cursor(after) if after is not None else None
    matching = query
    if position is not None:
        created_at, pk = position
        # The redundant upper bound makes the position an index condition: without it the
        # disjunction is a filter, and a page N rows deep reads and discards N rows.
        query = query.filter(
            Q(created_at__lte=created_at),
            Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=pk),
        )
    rows: list[Row] = await query.order_by("-created_at", "-id").limit(first + 1).values(*fields)
    has_next = len(rows) > first
    rows = rows[:first]
    end = rows[-1] if rows else None
    cursor = encode_cursor(end["created_at"], end["id"]) if end is not None else None
    return Page(
        rows=rows, has_next_page=has_next, end_cursor=cursor, count=lambda: count_rows(matching)
    )


def _sql_of(query: Any) -> tuple[str, list[Any]]:
    # Tortoise has no public way to a queryset's parameterised SQL with its parameters.
    query._choose_db_if_not_chosen()
    query._make_query()
    sql, params = query.query.get_parameterized_sql()
    return sql, list(params)


async def count_rows(query: QuerySet[Any]) -> int:
    """How many rows ``query`` matches: exact up to :data:`EXACT_COUNT_LIMIT`, and above it,
    on PostgreSQL, the planner's estimate (exact on other databases)."""
    connection = get_connection("default")
    postgres = connection.capabilities.dialect == "postgres"
    if not postgres:
        return await query.count()
    # Counting at most one more than the limit reads at most that many entries of the index
    # the pages are read from (in its order: an index scan however the rows lie in the table).
    limited = query.order_by("-created_at", "-id").limit(EXACT_COUNT_LIMIT + 1)
    sql, params = _sql_of(limited.values_list("id", flat=True))
    # Tortoise's own parameterised SQL, parameters apart: nothing from a client in the text.
    counted = f'SELECT COUNT(*) "n" FROM ({sql}) "matching"'  # noqa: S608
    _, rows = await connection.execute_query(counted, params)
    exact = int(rows[0]["n"])
    if exact <= EXACT_COUNT_LIMIT:
        return exact
    sql, params = _sql_of(query.values_list("id", flat=True))
    _, rows = await connection.execute_query(f"EXPLAIN (FORMAT JSON) {sql}", params)
    plan = rows[0]["QUERY PLAN"]
    if isinstance(plan, str):
        plan = json.loads(plan)
    # Never below what was just counted: an estimate from stale statistics can be lower.
    return max(exact, int(plan[0]["Plan"]["Plan Rows"]))
