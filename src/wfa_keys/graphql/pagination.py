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
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import LambdaType
from typing import Any, Protocol

from tortoise.connection import get_connection
from tortoise.expressions import Q
from tortoise.fields import DatetimeField, UUIDField
from tortoise.models import Model
from tortoise.queryset import QuerySet, ValuesQuery
from tortoise.timezone import get_default_timezone, get_use_tz

from wfa_keys.db import parameterized_sql
from wfa_keys.graphql.errors import BadUserInput
from wfa_keys.limits import MAX_PAGE_SIZE

logger = logging.getLogger("wfa_keys.graphql.pagination")

Row = dict[str, Any]
Count = Callable[[], Awaitable[int]]
#: Makes a page's converter of one column's values (a new one a page: UUIDs are memoized).
Convert = Callable[[], Callable[[Any], Any]]

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


class Filter(Protocol):
    """A filter whose SQL depends on its :attr:`shape` alone, apart from :meth:`parameters`.

    Building a query through Tortoise (filters resolved, joins made, SQL written) costs more
    than running it on a warm database. The statements of a filter's pages and totals are
    built by Tortoise on the shape's first use, and Tortoise's parameters compared with
    :meth:`parameters` (a statement whose parameters differ is never kept: Tortoise's goes
    out instead); later calls of that shape send the kept SQL with their own parameters.
    The SQL text is Tortoise's, the values apart: nothing from a client is in it.
    """

    @property
    def model(self) -> type[Model]:
        """The model whose rows the filter keeps."""
        ...

    @property
    def shape(self) -> Hashable:
        """What the filter's SQL depends on, apart from the values it compares with."""
        ...

    def query(self) -> QuerySet[Any]:
        """The matching rows, unordered."""
        ...

    def parameters(self) -> list[Any]:
        """The values the SQL of :meth:`query` compares with, in the order Tortoise sends."""
        ...


async def newest_first(
    query: QuerySet[Any] | Filter, *, fields: Sequence[str], first: int, after: str | None
) -> Page:
    """The page of ``query`` of at most ``first`` rows, newest first, after ``after``.

    Each row is a dict of ``fields`` (which must include ``id`` and ``created_at``), with
    the values ``.values()`` gives.
    """
    check_page_size(first)
    position = decode_cursor(after) if after is not None else None
    key, make, values = _statement_of(query)
    if values is not None:
        if position is not None:
            created_at, pk = position
            values += (created_at, created_at, created_at, pk)
        values.append(first + 1)
    rows = await _rows(
        key and ("page", *key, tuple(fields), position is not None),
        lambda: _page_of(make(), position, first).values(*fields),
        values,
    )
    end = rows[first - 1] if len(rows) > first else (rows[-1] if rows else None)
    return Page(
        rows=rows[:first],
        has_next_page=len(rows) > first,
        end_cursor=encode_cursor(end["created_at"], end["id"]) if end is not None else None,
        count=lambda: count_rows(query),
    )


async def count_rows(query: QuerySet[Any] | Filter) -> int:
    """How many rows ``query`` matches: exact up to :data:`EXACT_COUNT_LIMIT`, and above it,
    on PostgreSQL, the planner's estimate (exact on other databases)."""
    key, make, values = _statement_of(query)
    if get_connection("default").capabilities.dialect != "postgres":
        rows = await _rows(key and ("count", *key), lambda: make().count(), values)
        return int(next(iter(rows[0].values())))
    # Counting at most one more than the limit reads at most that many entries of the index
    # the pages are read from (in its order: an index scan however the rows lie in the table).
    rows = await _rows(
        key and ("limited count", *key),
        lambda: (
            make()
            .order_by("-created_at", "-id")
            .limit(EXACT_COUNT_LIMIT + 1)
            .values_list("id", flat=True)
        ),
        None if values is None else [*values, EXACT_COUNT_LIMIT + 1],
        'SELECT COUNT(*) "n" FROM ({}) "matching"',
    )
    exact = int(rows[0]["n"])
    if exact <= EXACT_COUNT_LIMIT:
        return exact
    rows = await _rows(
        key and ("estimate", *key),
        lambda: make().values_list("id", flat=True),
        values,
        "EXPLAIN (FORMAT JSON) {}",
    )
    plan = rows[0]["QUERY PLAN"]
    if isinstance(plan, str):
        plan = json.loads(plan)
    # Never below what was just counted: an estimate from stale statistics can be lower.
    return max(exact, int(plan[0]["Plan"]["Plan Rows"]))


Statement = tuple[Hashable, ...]

#: Statements of filters, by dialect, statement, filter class and shape: a few per shape.
_kept: dict[Statement, tuple[str, list[tuple[str, Convert]]]] = {}


def _statement_of(
    query: QuerySet[Any] | Filter,
) -> tuple[Statement | None, Callable[[], QuerySet[Any]], list[Any] | None]:
    """How to find ``query``'s statements (None: build them each time), how to build the
    query, and the values its filter compares with (None: whatever they are)."""
    if isinstance(query, QuerySet):
        return None, lambda: query, None
    return (type(query), query.shape), query.query, query.parameters()


async def _rows(
    key: Statement | None,
    make: Callable[[], Any],
    parameters: list[Any] | None,
    template: str = "{}",
) -> list[Row]:
    """The rows of statement ``key`` (None: not kept): ``template`` around the SQL of
    ``make()``, a query whose parameters are ``parameters`` (None: whatever they are)."""
    connection = get_connection("default")
    kept = None
    if key is not None:
        key = (connection.capabilities.dialect, *key)
        kept = _kept.get(key)
    if kept is None:
        query = make()
        sql, expected = parameterized_sql(query)
        # Tortoise's own parameterised SQL in a template of ours: nothing from a client.
        kept = (template.format(sql), _converters(query))
        if parameters is not None and expected != parameters:
            logger.error("statement %r: the parameters differ from Tortoise's", key)
        elif key is not None:
            _kept[key] = kept
        parameters = expected
    sql, columns = kept
    rows: list[Row] = await connection.execute_query_dict(sql, parameters)
    if columns and rows:
        converters = [(name, convert()) for name, convert in columns]
        for row in rows:
            for name, function in converters:
                row[name] = function(row[name])
    return rows


def _page_of(query: QuerySet[Any], position: tuple[datetime, int] | None, first: int) -> Any:
    """``query``'s page after ``position`` (with one row more), newest first."""
    if position is not None:
        created_at, pk = position
        # The redundant upper bound makes the position an index condition: without it the
        # disjunction is a filter, and a page N rows deep reads and discards N rows.
        query = query.filter(
            Q(created_at__lte=created_at),
            Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=pk),
        )
    return query.order_by("-created_at", "-id").limit(first + 1)


def _converters(query: Any) -> list[tuple[str, Convert]]:
    """The columns of a ``.values()`` query that Tortoise converts, with how to convert them
    to what Tortoise would give (as its ``ValuesQuery._execute`` does, faster)."""
    if not isinstance(query, ValuesQuery):
        return []
    columns = []
    for alias, name in query._fields_for_select.items():
        function = query.resolve_to_python_value(query.model, name)
        if isinstance(function, LambdaType):  # a value Tortoise leaves as it is
            continue
        field = getattr(function, "__self__", None)
        if isinstance(field, DatetimeField):
            columns.append((alias, _datetimes(function)))
        elif isinstance(field, UUIDField):
            columns.append((alias, _memoized(function)))
        else:
            columns.append((alias, _as_is(function)))
    return columns


def _as_is(function: Callable[[Any], Any]) -> Convert:
    return lambda: function


def _datetimes(slow: Callable[[Any], Any]) -> Convert:
    if not (get_use_tz() and str(get_default_timezone()) == "UTC"):
        return _as_is(slow)

    def convert(value: Any) -> Any:
        # A time in UTC (text with its offset on SQLite, a datetime from asyncpg) is the
        # instant Tortoise would give, and it reads the same: Tortoise changes only the tzinfo.
        if value is None:
            return None
        moment = datetime.fromisoformat(value) if type(value) is str else value
        if type(moment) is datetime and moment.tzinfo is UTC:
            return moment
        return slow(value)

    return lambda: convert


def _memoized(slow: Callable[[Any], Any]) -> Convert:
    def make() -> Callable[[Any], Any]:
        seen: dict[Any, Any] = {}

        def convert(value: Any) -> Any:
            found = seen.get(value)
            if found is None:
                found = seen[value] = slow(value)
            return found

        return convert

    return make
