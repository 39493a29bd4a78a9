"""Call analytics: each key's calls per hour by outcome, written in batches, read by range.

The middleware counts calls in memory and hands them to :class:`TortoiseCallSink` every
10 seconds and at shutdown; rows of ``key_usage`` (one per key and hour) are added to, or
created, and so are the rollups ``organizationUsage`` reads: ``organization_usage_hour``,
``key_usage_day`` and ``key_usage_week`` (sums of ``key_usage``, in the same transaction).
Rows stay after their key is deleted (the Key ID keeps its history) and are pruned after
``WFA_USAGE_RETENTION_DAYS`` by each process's housekeeping.
"""

from __future__ import annotations

import asyncio
import functools
import operator
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson
from tortoise.connection import get_connection
from tortoise.expressions import F, Q
from tortoise.functions import Sum
from tortoise.transactions import in_transaction

from wfa_auth import CALL_OUTCOMES
from wfa_keys import limits
from wfa_keys.errors import InvalidInput
from wfa_keys.models import (
    CallCounts,
    KeyUsage,
    KeyUsageDay,
    KeyUsageWeek,
    OrganizationUsageHour,
)

__all__ = [
    "Granularity",
    "KeyTotals",
    "TortoiseCallSink",
    "UsageCounts",
    "key_usage",
    "organization_usage",
    "prune_usage",
    "usage_range",
]

#: The ``key_usage`` columns, in the order of :data:`wfa_auth.CALL_OUTCOMES`.
COLUMNS = CALL_OUTCOMES
#: Every call of a row, whatever its outcome.
_TOTAL = functools.reduce(operator.add, [F(column) for column in COLUMNS])


class Granularity(StrEnum):
    """The width of one usage bucket: an hour or a UTC day."""

    HOUR = "hour"
    DAY = "day"


_STEP = {Granularity.HOUR: timedelta(hours=1), Granularity.DAY: timedelta(days=1)}


@dataclass(frozen=True, slots=True)
class UsageCounts:
    """The calls of one bucket (starting at ``start``), by outcome (``CALL_OUTCOMES``)."""

    start: datetime
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        """Every call of the bucket, whatever its outcome."""
        return sum(self.counts)


@dataclass(frozen=True, slots=True)
class KeyTotals:
    """One key's calls over a range: in total and successful."""

    key_id: str
    total: int
    success: int


class TortoiseCallSink:
    """A :class:`wfa_auth.CallSink` over ``key_usage`` and its rollups: one transaction per
    batch.

    ``on_recorded(counts)`` is called with each written batch's totals by outcome (for
    Prometheus), after the commit.
    """

    def __init__(self, on_recorded: Callable[[Sequence[int]], None] | None = None) -> None:
        self.on_recorded = on_recorded

    async def record_calls(self, counts: Mapping[tuple[str, str, datetime], Sequence[int]]) -> None:
        """Add each (Key ID, organization, hour)'s counts to its row, creating missing ones,
        and to the rollups of its key's day and week and its organization's hour: all or
        nothing."""
        organizations = _organization_hours(counts)
        # The same statements in every process, each table's rows sorted: every process
        # locks rows in one order (a key's tables, then organizations' hours), so two
        # flushes that add to the same rows wait for each other, never deadlock. The
        # organization's hour, which every flush of the hour adds to, comes last and is
        # locked for the shortest time.
        async with in_transaction() as connection:
            if connection.capabilities.dialect == "postgres":
                # A key's three tables read one JSON text of its hours, and PostgreSQL works
                # out their days and weeks (summed here, 50,000 keys took 0.2 s a flush).
                # A flush inside one hour (the usual case) holds each key once: its day's
                # and week's rows are then its hour's, summed only otherwise.
                hours = _json_rows(counts, keyed=True)
                grouped = len({key_id for key_id, _, _ in counts}) < len(counts)
                await _upsert_postgres_keys(connection, hours, grouped)
                rows = _json_rows(organizations, keyed=False)
                await _upsert_postgres(connection, _ORGANIZATION_HOURS, _BY_ORGANIZATION, rows)
            else:
                for level, sums in zip(_LEVELS, (counts, *_rollups(counts)), strict=True):
                    table = level.model._meta.db_table
                    await _upsert_sqlite(connection, table, ("key_id", level.column), sums)
                await _upsert_sqlite(
                    connection, _ORGANIZATION_HOURS, _BY_ORGANIZATION, organizations
                )
        if self.on_recorded is not None:
            zero = [0] * len(COLUMNS)
            self.on_recorded([sum(c) for c in zip(zero, *organizations.values(), strict=True)])


#: The organizations' hours, and their unique columns.
_ORGANIZATION_HOURS = "organization_usage_hour"
_BY_ORGANIZATION = ("organization_id", "hour")


def _rollups(
    counts: Mapping[tuple[str, str, datetime], Sequence[int]],
) -> list[dict[tuple[str, str, datetime], Sequence[int]]]:
    """The sums of ``counts`` by key and day, then by key and week, keyed like ``counts``."""
    rollups: list[dict[tuple[str, str, datetime], Sequence[int]]] = [{} for _ in _ROLLUPS]
    # A flush holds an hour or two: each rollup's start worked out once per hour.
    starts_of: dict[datetime, tuple[datetime, ...]] = {}
    for (key_id, organization_id, hour), values in counts.items():
        starts = starts_of.get(hour)
        if starts is None:
            starts = starts_of[hour] = tuple(level.floor(hour) for level in _ROLLUPS)
        for sums, start in zip(rollups, starts, strict=True):
            _sum_into(sums, (key_id, organization_id, start), values)
    return rollups


def _organization_hours(
    counts: Mapping[tuple[str, str, datetime], Sequence[int]],
) -> dict[tuple[str, datetime], list[int]]:
    """The sums of ``counts`` by organization and hour, column by column: zip(*rows) makes
    an iterator a key's row, and 50,000 of them a flush joined the garbage collector's
    oldest generation."""
    groups: dict[tuple[str, datetime], list[Sequence[int]]] = {}
    for (_, organization_id, hour), values in counts.items():
        groups.setdefault((organization_id, hour), []).append(values)
    columns = [operator.itemgetter(n) for n in range(len(COLUMNS))]
    return {key: [sum(map(c, rows)) for c in columns] for key, rows in groups.items()}


def _sum_into(sums: dict[Any, Sequence[int]], key: Any, values: Sequence[int]) -> None:
    """Add ``values`` to ``sums[key]``; never changes a sequence in place (a key's counts
    are shared by its hour and its rollups)."""
    total = sums.get(key)
    sums[key] = values if total is None else [a + b for a, b in zip(total, values, strict=True)]


#: Rows per statement on SQLite: 11 parameters at most each, well under its limit.
_BATCH = 1000
#: The PostgreSQL type of each column an upsert writes (the counts are all BIGINT).
_PG_TYPES = {
    "key_id": "text",
    "organization_id": "uuid",
    "hour": "timestamptz",
    "day": "timestamptz",
    "week": "timestamptz",
}


def _json_rows(sums: Mapping[Any, Sequence[int]], *, keyed: bool) -> str:
    """``sums`` as one JSON array of rows, sorted by their keys, each with the values of
    :func:`_columns` in order: Key ID, start and organization (``keyed``), or organization
    and hour, then the counts."""
    text = functools.cache(_utc_text)
    order = sorted(sums)
    if keyed:
        rows = [(key[0], text(key[2]), key[1], *sums[key]) for key in order]
    else:
        rows = [(key[0], text(key[1]), *sums[key]) for key in order]
    # orjson: a tenth of json's time for 50,000 rows. An organization's ID may come as a
    # UUID, which orjson writes as its text.
    return orjson.dumps(rows).decode()


async def _upsert_postgres_keys(connection: Any, hours: str, grouped: bool) -> None:
    """Add a key's hours (``hours``, :func:`_json_rows`) to ``key_usage`` and to its day's
    and week's rows, creating missing ones; ``grouped``: summed by key and start first. One
    statement for the whole batch and the three tables: tens of thousands of keys a flush at
    scale, where eleven parameters a row (or an array a column, which asyncpg checks element
    by element) cost the process a second of CPU per flush."""
    await connection.execute_query(_postgres_key_upsert(grouped), [hours])


async def _upsert_postgres(connection: Any, table: str, unique: tuple[str, str], rows: str) -> None:
    """Add the rows of ``rows`` (:func:`_json_rows`, organizations' hours) to ``table``,
    whose unique columns are ``unique``, creating missing ones, in one statement."""
    await connection.execute_query(_postgres_upsert(table, unique), [rows])


async def _upsert_sqlite(
    connection: Any,
    table: str,
    unique: tuple[str, str],
    sums: Mapping[Any, Sequence[int]],
) -> None:
    """Add each of ``sums`` to its row of ``table``, creating missing ones, in the order of
    their keys: (Key ID, organization, start) for a key's table, (organization, hour) else;
    ``unique`` names the table's unique columns."""
    keyed = unique[0] == "key_id"
    order = sorted(sums)
    row = "(" + ", ".join(["?"] * len(_columns(unique))) + ")"
    for first in range(0, len(order), _BATCH):
        chunk = order[first : first + _BATCH]
        parameters: list[Any] = []
        for key in chunk:
            # (key_id, organization, start) for a key's tables, (organization, hour) else.
            names = (key[0], key[2], key[1]) if keyed else key
            parameters += [_parameter(value) for value in names]
            parameters += sums[key]
        sql = _sqlite_upsert(table, unique).format(values=", ".join([row] * len(chunk)))
        await connection.execute_query(sql, parameters)


def _columns(unique: tuple[str, str]) -> list[str]:
    """The columns an upsert into a table with these unique columns writes, in order."""
    return [*unique, *(["organization_id"] if unique[0] == "key_id" else []), *COLUMNS]


def _on_conflict(table: str, unique: tuple[str, str]) -> str:
    added = ", ".join(f'"{c}" = "{table}"."{c}" + excluded."{c}"' for c in COLUMNS)
    conflict = ", ".join(f'"{c}"' for c in unique)
    return f"ON CONFLICT ({conflict}) DO UPDATE SET {added}"


@functools.cache
def _postgres_key_upsert(grouped: bool) -> str:
    """PostgreSQL's upsert of a key's three tables from ``$1``, a JSON array of a key's
    hours (:func:`_json_rows`), each start the hour truncated to the table's span
    (``grouped``: summed by key and start).

    The JSON is parsed once: the three tables read it from one ``MATERIALIZED`` CTE, the
    day's and week's written by data-modifying CTEs of the same statement (parsed once a
    table, a flush of 50,000 keys took PostgreSQL 1.07 s of CPU; parsed once, 0.77 s)."""
    hours, days, weeks = [
        _insert_from('"rows"', level.model._meta.db_table, ("key_id", level.column), grouped)
        for level in _LEVELS
    ]
    # Every process sends this same statement, so every process locks a key's rows in one
    # order. (PostgreSQL 15 runs the main statement first, then the data-modifying CTEs
    # last to first: hours, days, weeks, the order of the statements a table before.)
    rollups = f'"weeks" AS ({weeks}), "days" AS ({days})'
    return f'WITH "rows" AS MATERIALIZED ({_parsed(("key_id", "hour"))}), {rollups} {hours}'


@functools.cache
def _postgres_upsert(table: str, unique: tuple[str, str]) -> str:
    """PostgreSQL's upsert of ``table`` (organizations' hours) from ``$1``, a JSON array of
    :func:`_json_rows`."""
    return _insert_from(f'({_parsed(unique)}) AS "rows"', table, unique, grouped=False)


def _parsed(unique: tuple[str, str]) -> str:
    """The rows of ``$1``, a JSON array of :func:`_json_rows`, as the columns of
    :func:`_columns` of a table whose unique columns are ``unique``."""
    # jsonb, parsed once: each ``->>`` of a json row parses its text again, eleven times a
    # row (a 50,000-row flush took PostgreSQL 600 ms a table; 350 ms as jsonb).
    values = ", ".join(
        f'("row" ->> {i})::{_PG_TYPES.get(c, "bigint")} AS "{c}"'
        for i, c in enumerate(_columns(unique))
    )
    return f'SELECT {values} FROM jsonb_array_elements($1::jsonb) AS "row"'  # noqa: S608


def _insert_from(source: str, table: str, unique: tuple[str, str], grouped: bool) -> str:
    """The upsert of ``table`` (its unique columns ``unique``) from ``source``, rows of
    :func:`_columns`'s columns of ``(key_id, hour)`` for a key's tables, or of ``unique``."""
    keyed = unique[0] == "key_id"
    span = unique[1]
    start = '"hour"' if span == "hour" else f"date_trunc('{span}', \"hour\", 'UTC')"
    # A key has one organization: grouped by too, it changes no group.
    keys = [f'"{unique[0]}"', start, *(['"organization_id"'] if keyed else [])]
    counts = [f'sum("{c}")::bigint' if grouped else f'"{c}"' for c in COLUMNS]
    # Sorted as Python sorts the rows of a flush that needs no sums (code points: "C").
    positions = ", ".join(str(i) for i in range(1, len(keys) + 1))
    group = f'GROUP BY {positions} ORDER BY "{unique[0]}" COLLATE "C", 2 ' if grouped else ""
    names = ", ".join(f'"{c}"' for c in _columns(unique))
    # Names from this module only; every value is a parameter.
    return (
        f'INSERT INTO "{table}" ({names}) SELECT {", ".join(keys + counts)} '  # noqa: S608
        f"FROM {source} " + group + _on_conflict(table, unique)
    )


@functools.cache
def _sqlite_upsert(table: str, unique: tuple[str, str]) -> str:
    """SQLite's upsert of ``table``, its rows left as ``{values}``."""
    names = ", ".join(f'"{c}"' for c in _columns(unique))
    # Names from this module only; every value is a parameter.
    return (
        f'INSERT INTO "{table}" ({names}) VALUES {{values}} '  # noqa: S608
        + _on_conflict(table, unique)
    )


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive one is UTC already (as asyncpg and the tables read it)."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _utc_text(moment: datetime) -> str:
    """A start as ISO text with its offset, for PostgreSQL."""
    return _utc(moment).isoformat()


def _parameter(value: Any) -> Any:
    """A key column's value as SQLite takes it: Tortoise's ISO text for a datetime (a naive
    one is UTC), text for a UUID."""
    if isinstance(value, datetime):
        return _utc(value).isoformat(" ")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _floor(moment: datetime, granularity: Granularity) -> datetime:
    moment = _utc(moment).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if granularity is Granularity.DAY else moment


def _week(moment: datetime) -> datetime:
    day = _floor(moment, Granularity.DAY)
    return day - timedelta(days=day.weekday())


@dataclass(frozen=True, slots=True)
class _Level:
    """A table of one key's calls per span of time: its model, start column, span, and
    the start of the span holding a moment."""

    model: type[CallCounts]
    column: str
    width: timedelta
    floor: Callable[[datetime], datetime]
    #: The fewest spans worth reading here rather than in the finer table (another query).
    least: int = 1


_HOURS = _Level(KeyUsage, "hour", timedelta(hours=1), lambda m: _floor(m, Granularity.HOUR))
#: The rollups of ``key_usage``, finest first.
_ROLLUPS = (
    _Level(KeyUsageDay, "day", timedelta(days=1), lambda m: _floor(m, Granularity.DAY)),
    _Level(KeyUsageWeek, "week", timedelta(weeks=1), _week, least=2),
)
#: ``key_usage`` and its rollups, as a flush writes them.
_LEVELS = (_HOURS, *_ROLLUPS)


def _pieces(
    low: datetime, high: datetime, levels: Sequence[_Level]
) -> list[tuple[_Level, datetime, datetime]]:
    """[low, high) (whole hours) cut into the spans of the coarsest of ``levels`` it holds
    whole, and the hours or days either side of them in finer ones."""
    *finer, level = levels
    if not finer:
        return [(level, low, high)] if low < high else []
    first = level.floor(low + level.width - _HOURS.width)
    last = level.floor(high)
    if last - first < level.width * level.least:
        return _pieces(low, high, finer)
    return [*_pieces(low, first, finer), (level, first, last), *_pieces(last, high, finer)]


def usage_range(
    since: datetime,
    until: datetime | None,
    granularity: Granularity,
    now: datetime | None = None,
) -> list[datetime]:
    """The starts of the buckets from the one holding ``since`` to the one holding
    ``until`` (default: now); at most 31 days of hours or 400 days of days."""
    until = until or now or datetime.now(UTC)
    first, last = _floor(since, granularity), _floor(until, granularity)
    if last < first:
        raise InvalidInput("until", "until must not be before since.")
    step = _STEP[granularity]
    if granularity is Granularity.HOUR:
        most = timedelta(days=limits.MAX_USAGE_HOURS_DAYS)
        unit = f"{limits.MAX_USAGE_HOURS_DAYS} days of hours"
    else:
        most = timedelta(days=limits.MAX_USAGE_DAYS)
        unit = f"{limits.MAX_USAGE_DAYS} days"
    if last - first > most:
        raise InvalidInput("since", f"A usage query covers at most {unit}.")
    return [first + step * i for i in range((last - first) // step + 1)]


def _epoch(moment: datetime | str) -> int:
    """Seconds since the epoch of a column's datetime (SQLite's rows give ISO text)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:  # stored in UTC
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _bucketed(starts: list[datetime], granularity: Granularity, rows: Any) -> list[UsageCounts]:
    """Rows of (hour, count per outcome...) added up into the buckets (empty ones too).

    A row's bucket is found by integer arithmetic on its epoch seconds: buckets are whole
    UTC hours or days, so no calendar work per row (a month of hours is 720 rows).
    """
    first = _epoch(starts[0])
    step = int(_STEP[granularity].total_seconds())
    width = len(COLUMNS)
    sums: list[list[int] | None] = [None] * len(starts)
    for row in rows:
        values = tuple(row)
        i = (_epoch(values[0]) - first) // step
        if not 0 <= i < len(sums):
            continue
        bucket = sums[i]
        if bucket is None:
            sums[i] = [int(value or 0) for value in values[1 : width + 1]]
        else:
            for j in range(width):
                bucket[j] += int(values[j + 1] or 0)
    zero = (0,) * width
    return [
        UsageCounts(start, zero if counts is None else tuple(counts))
        for start, counts in zip(starts, sums, strict=True)
    ]


async def _rows(query: Any) -> Any:
    """The rows of a ``values`` or ``values_list`` query as the driver returns them, each
    column in the order asked for.

    Tortoise would convert each of a month's 6,480 values in Python first (9 columns by
    720 hours): a third of the whole query's time for values that are already ints and
    datetimes (sums may come as decimals: read with ``int``). The SQL and its parameters
    are still Tortoise's, for every dialect.
    """
    query.sql()  # builds the query for the connection's dialect
    sql, parameters = query.query.get_parameterized_sql()
    _count, rows = await get_connection("default").execute_query(sql, parameters)
    return rows


async def key_usage(
    organization_id: Any, key_id: str, starts: list[datetime], granularity: Granularity
) -> list[UsageCounts]:
    """One key's calls in each bucket of ``starts`` (see :func:`usage_range`)."""
    query = KeyUsage.filter(
        organization_id=organization_id,
        key_id=key_id,
        hour__gte=starts[0],
        hour__lt=starts[-1] + _STEP[granularity],
    ).values_list("hour", *COLUMNS)
    return _bucketed(starts, granularity, await _rows(query))


async def organization_usage(
    organization_id: Any, starts: list[datetime], granularity: Granularity, top: int
) -> tuple[list[UsageCounts], list[KeyTotals]]:
    """The organization's calls in each bucket, and its ``top`` keys by calls over the
    range (deleted keys included, by Key ID), most first.

    The buckets add up ``organization_usage_hour`` (one row per hour), the ranking
    ``key_usage_week`` over the range's whole weeks, ``key_usage_day`` over the whole days
    either side and ``key_usage`` over the hours before the first day and after the last (a
    range of hours need not start or end at midnight): the same sums as over ``key_usage``
    alone, from a few hundredths of its rows.
    """
    if not 1 <= top <= limits.MAX_USAGE_TOP:
        raise InvalidInput("top", f"top must be 1 to {limits.MAX_USAGE_TOP}.")
    low, high = starts[0], starts[-1] + _STEP[granularity]
    buckets = OrganizationUsageHour.filter(
        organization_id=organization_id, hour__gte=low, hour__lt=high
    ).values_list("hour", *COLUMNS)
    spans: dict[_Level, list[Q]] = {}
    for level, lo, hi in _pieces(low, high, [_HOURS, *_ROLLUPS]):
        span: dict[str, Any] = {f"{level.column}__gte": lo, f"{level.column}__lt": hi}
        spans.setdefault(level, []).append(Q(**span))
    rankings = [  # one query per table
        level.model.filter(Q(*ranges, join_type=Q.OR), organization_id=organization_id)
        .annotate(s_total=Sum(_TOTAL), s_success=Sum(F("success")))
        .group_by("key_id")
        .values("key_id", "s_total", "s_success")
        for level, ranges in spans.items()
    ]
    # Sent together (on PostgreSQL, over as many pooled connections): the answer waits for
    # the slowest, not for the sum of the round trips.
    per_hour, *ranked = await asyncio.gather(*(_rows(q) for q in [buckets, *rankings]))
    sums: dict[str, Sequence[int]] = {}
    # Ranked here, not in SQL: ties go by Key ID in code point order, whatever the
    # database's collation.
    for rows in ranked:
        for row in rows:
            key_id, total, success = tuple(row)
            _sum_into(sums, key_id, (int(total or 0), int(success or 0)))
    totals = [KeyTotals(key_id, total, success) for key_id, (total, success) in sums.items()]
    totals.sort(key=lambda t: (-t.total, t.key_id))
    return _bucketed(starts, granularity, per_hour), totals[:top]


async def prune_usage(retention_days: int, now: datetime | None = None) -> int:
    """Delete the hours older than ``retention_days`` (and the rollups' rows of them);
    returns how many ``key_usage`` rows went.

    The day and the week the cutoff falls in keep their later hours: their rollup rows are
    summed again from what is left, in the same transaction, so that they still add up.
    """
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    async with in_transaction():
        deleted: int = await KeyUsage.filter(hour__lt=cutoff).delete()
        await OrganizationUsageHour.filter(hour__lt=cutoff).delete()
        finer = _HOURS
        for level in _ROLLUPS:
            start = level.floor(cutoff)
            await level.model.filter(**{f"{level.column}__lt": start}).delete()
            if deleted:
                await _sum_again(level, start, finer)
            finer = level
    return deleted


async def _sum_again(level: _Level, start: datetime, finer: _Level) -> None:
    """Replace ``level``'s rows of the span from ``start`` with the sums of ``finer``'s."""
    await level.model.filter(**{level.column: start}).delete()
    sums = {f"s_{column}": Sum(column) for column in COLUMNS}
    in_span = {f"{finer.column}__gte": start, f"{finer.column}__lt": start + level.width}
    rows = await (
        finer.model.filter(**in_span)
        .annotate(**sums)
        .group_by("key_id", "organization_id")
        .values("key_id", "organization_id", *sums)
    )
    await level.model.bulk_create(
        [
            level.model(
                key_id=row["key_id"],
                organization_id=row["organization_id"],
                **{level.column: start},
                **{column: int(row[f"s_{column}"] or 0) for column in COLUMNS},
            )
            for row in rows
        ]
    )
