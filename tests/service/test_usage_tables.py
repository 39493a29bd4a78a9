"""Call analytics storage: the flush, the rollups organizationUsage reads, pruning."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tortoise.connection import get_connection
from tortoise.context import TortoiseContext

from support.collector import young_survivors
from support.statements import sent_statements
from wfa_keys import usage
from wfa_keys.models import (
    KeyNetwork,
    KeyUsage,
    KeyUsageDay,
    KeyUsageWeek,
    OrganizationUsageHour,
)
from wfa_keys.usage import (
    COLUMNS,
    Granularity,
    KeyTotals,
    TortoiseCallSink,
    UsageCounts,
    organization_usage,
    prune_usage,
    usage_range,
)
from wfa_keys.webhooks.reminders import note_key_uses

ACME, GLOBEX = str(uuid.UUID(int=1)), str(uuid.UUID(int=2))
#: A Tuesday noon: ranges around it start and end mid-day and mid-week.
NOON = datetime(2026, 3, 10, 12, tzinfo=UTC)
Counts = dict[tuple[str, str, datetime], list[int]]


def _random_counts(seed: int) -> Counts:
    """Calls of five Acme keys (one of them since deleted: nothing here needs its row) and a
    Globex key, in random hours of the three weeks around noon, a few outcomes each."""
    rng = random.Random(seed)
    keys = [(f"wfak_acme{n}", ACME) for n in range(4)]
    keys += [("wfak_deletedkey", ACME), ("wfak_globex", GLOBEX)]
    counts: Counts = {}
    for _ in range(300):
        key_id, organization_id = rng.choice(keys)
        hour = NOON + timedelta(hours=rng.randrange(-240, 240))
        counts[(key_id, organization_id, hour)] = [rng.randrange(4) for _ in COLUMNS]
    return counts


async def _write_in_batches(counts: Counts, batches: int) -> None:
    """Written as the service's flushes write them: several batches, one row many times."""
    sink = TortoiseCallSink()
    items = list(counts.items())
    for i in range(batches):
        await sink.record_calls(dict(items[i::batches]))
    await sink.record_calls(dict(items[::3]))  # a later flush adds to rows already there


async def _direct(
    organization_id: str, starts: list[datetime], granularity: Granularity, top: int
) -> tuple[list[UsageCounts], list[KeyTotals]]:
    """The answer from ``key_usage`` rows alone, summed here."""
    step = starts[1] - starts[0] if len(starts) > 1 else timedelta(days=1)
    buckets = {start: [0] * len(COLUMNS) for start in starts}
    keys: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in await KeyUsage.filter(organization_id=organization_id).values():
        hour = row["hour"].astimezone(UTC)
        start = hour.replace(hour=0) if granularity is Granularity.DAY else hour
        if not starts[0] <= start < starts[-1] + step:
            continue
        values = [row[column] for column in COLUMNS]
        buckets[start] = [a + b for a, b in zip(buckets[start], values, strict=True)]
        keys[row["key_id"]][0] += sum(values)
        keys[row["key_id"]][1] += row["success"]
    totals = sorted(
        (KeyTotals(key_id, total, success) for key_id, (total, success) in keys.items()),
        key=lambda t: (-t.total, t.key_id),
    )
    return [UsageCounts(start, tuple(buckets[start])) for start in starts], totals[:top]


async def _rollup_rows() -> dict[tuple[str, Any, datetime], list[int]]:
    """Every rollup row, by table, key or organization, and start."""
    rows: dict[tuple[str, Any, datetime], list[int]] = {}
    for model, by, at in (
        (KeyUsageDay, "key_id", "day"),
        (KeyUsageWeek, "key_id", "week"),
        (OrganizationUsageHour, "organization_id", "hour"),
    ):
        for row in await model.all().values(by, at, *COLUMNS):
            where = (at, str(row[by]), row[at].astimezone(UTC))
            rows[where] = [row[column] for column in COLUMNS]
    return rows


async def _rollup_rows_from_hours() -> dict[tuple[str, Any, datetime], list[int]]:
    """What every rollup row must hold: sums of the ``key_usage`` rows."""
    rows: dict[tuple[str, Any, datetime], list[int]] = {}
    for row in await KeyUsage.all().values("key_id", "organization_id", "hour", *COLUMNS):
        hour = row["hour"].astimezone(UTC)
        day = hour.replace(hour=0)
        for where in (
            ("day", row["key_id"], day),
            ("week", row["key_id"], day - timedelta(days=day.weekday())),
            ("hour", str(row["organization_id"]), hour),
        ):
            total = rows.setdefault(where, [0] * len(COLUMNS))
            for i, column in enumerate(COLUMNS):
                total[i] += row[column]
    return rows


async def test_every_rollup_row_is_the_sum_of_its_hours(db: TortoiseContext) -> None:
    await _write_in_batches(_random_counts(seed=7), batches=3)
    assert await _rollup_rows() == await _rollup_rows_from_hours()


async def test_every_rollup_row_is_the_sum_of_its_hours_when_each_flush_holds_one_hour(
    db: TortoiseContext,
) -> None:
    """The usual flush, inside one hour, holds each key once (its day's and week's rows are
    then its hour's); the flushes above hold several hours of a key, summed."""
    counts = _random_counts(seed=11)
    sink = TortoiseCallSink()
    for hour in sorted({hour for _, _, hour in counts}):
        await sink.record_calls({key: v for key, v in counts.items() if key[2] == hour})
    assert await _rollup_rows() == await _rollup_rows_from_hours()


RANGES = [
    # (since, until, granularity): ranges of hours that start and end mid-day, cross
    # several days or stay inside one; ranges of days (whole UTC days, by definition).
    (NOON - timedelta(days=3, minutes=20), NOON + timedelta(days=2, hours=5), Granularity.HOUR),
    (NOON - timedelta(hours=5), NOON + timedelta(hours=3), Granularity.HOUR),
    (NOON - timedelta(hours=12), NOON + timedelta(hours=11, minutes=59), Granularity.HOUR),
    (NOON - timedelta(days=9), NOON + timedelta(days=9), Granularity.HOUR),
    (NOON - timedelta(days=7), NOON, Granularity.DAY),
    (NOON - timedelta(days=30), NOON + timedelta(days=30), Granularity.DAY),
    (NOON, NOON, Granularity.DAY),
]


@pytest.mark.parametrize(("since", "until", "granularity"), RANGES)
async def test_organization_usage_answers_as_a_sum_of_its_keys_hours(
    db: TortoiseContext, since: datetime, until: datetime, granularity: Granularity
) -> None:
    await _write_in_batches(_random_counts(seed=21), batches=4)
    starts = usage_range(since, until, granularity)
    for top in (2, 100):
        assert await organization_usage(ACME, starts, granularity, top) == await _direct(
            ACME, starts, granularity, top
        )
    assert sum(b.total for b in (await organization_usage(ACME, starts, granularity, 100))[0])


async def test_a_failed_flush_writes_no_table(
    db: TortoiseContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = TortoiseCallSink()
    first = {("wfak_a", ACME, NOON): [1] * len(COLUMNS)}
    await sink.record_calls(first)
    tables = (KeyUsage, KeyUsageDay, KeyUsageWeek, OrganizationUsageHour)
    before = [await model.all().values() for model in tables]

    dialect = get_connection("default").capabilities.dialect
    name = "_upsert_postgres" if dialect == "postgres" else "_upsert_sqlite"
    upsert = getattr(usage, name)

    async def refuse_organizations(connection: Any, table: str, *args: Any) -> None:
        if table == "organization_usage_hour":
            raise ConnectionResetError("the database went away")
        await upsert(connection, table, *args)

    # The organization's hour is written last: the key's rows were written and are undone.
    monkeypatch.setattr(usage, name, refuse_organizations)
    with pytest.raises(ConnectionResetError):
        await sink.record_calls(
            {
                ("wfak_a", ACME, NOON): [5] * len(COLUMNS),
                ("wfak_b", ACME, NOON + timedelta(hours=1)): [7] * len(COLUMNS),
            }
        )

    assert [await model.all().values() for model in tables] == before
    assert await KeyUsage.filter(key_id="wfak_b").count() == 0


async def test_pruning_deletes_old_rollups_and_keeps_the_cutoff_day_summing_its_hours(
    db: TortoiseContext,
) -> None:
    counts = _random_counts(seed=5)
    await _write_in_batches(counts, batches=2)
    now = NOON + timedelta(days=3, minutes=30)  # the cutoff falls at 12:30 on NOON's day

    deleted = await prune_usage(retention_days=3, now=now)

    cutoff = NOON + timedelta(minutes=30)
    assert deleted == len({(k, h) for k, _, h in counts if h < cutoff})
    assert await KeyUsage.filter(hour__lt=cutoff).count() == 0
    assert await OrganizationUsageHour.filter(hour__lt=cutoff).count() == 0
    assert await KeyUsageDay.filter(day__lt=NOON.replace(hour=0)).count() == 0
    assert await KeyUsageWeek.filter(week__lt=NOON.replace(hour=0) - timedelta(days=1)).count() == 0
    assert await KeyUsageWeek.filter(week=NOON.replace(hour=0) - timedelta(days=1)).count() > 0
    assert await _rollup_rows() == await _rollup_rows_from_hours()
    # What is left adds up as before, the day of the cutoff included.
    for since, until, granularity in RANGES:
        starts = usage_range(max(since, cutoff), max(until, cutoff), granularity)
        assert await organization_usage(ACME, starts, granularity, 100) == await _direct(
            ACME, starts, granularity, 100
        )


async def test_a_batch_of_more_rows_than_one_statement_takes_is_written_whole(
    db: TortoiseContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(usage, "_BATCH", 3)
    counts = {(f"wfak_k{n}", ACME, NOON): [n, *[0] * (len(COLUMNS) - 1)] for n in range(1, 11)}

    await TortoiseCallSink().record_calls(counts)

    assert await KeyUsage.all().count() == await KeyUsageDay.all().count() == 10
    assert [row.success for row in await OrganizationUsageHour.all()] == [55]
    assert [row.success for row in await KeyUsageWeek.filter(key_id="wfak_k10")] == [10]


async def test_a_flush_writes_a_keys_three_tables_in_one_statement_on_postgresql(
    db: TortoiseContext, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL only: a flush's JSON is parsed once for a key's hour, day and week tables
    # (the day's and week's written by data-modifying CTEs), not once a table; the
    # organizations' hours come second.
    if not database_url.startswith("postgres"):
        pytest.skip("SQLite writes a table a statement")
    statements = sent_statements(monkeypatch)
    flushes = [
        # Two hours of one key in a flush: its day and week rows are summed.
        {
            ("wfak_a", ACME, NOON): [1, 2, *[0] * (len(COLUMNS) - 2)],
            ("wfak_a", ACME, NOON + timedelta(hours=1)): [3, *[0] * (len(COLUMNS) - 1)],
            ("wfak_b", GLOBEX, NOON): [5, *[1] * (len(COLUMNS) - 1)],
        },
        {("wfak_a", ACME, NOON + timedelta(hours=1)): [7, *[0] * (len(COLUMNS) - 1)]},
    ]
    for counts in flushes:
        await TortoiseCallSink().record_calls(counts)
    monkeypatch.undo()

    writes = [sql for sql in statements if sql.lstrip().upper().startswith(("WITH", "INSERT"))]
    assert len(writes) == 4, writes
    assert [sql.count("INSERT INTO") for sql in writes] == [3, 1, 3, 1]
    hours = {
        (row["key_id"], row["hour"].astimezone(UTC)): row["success"]
        for row in await KeyUsage.all().values("key_id", "hour", "success")
    }
    assert hours == {
        ("wfak_a", NOON): 1,
        ("wfak_a", NOON + timedelta(hours=1)): 10,
        ("wfak_b", NOON): 5,
    }
    assert await _rollup_rows() == await _rollup_rows_from_hours()
    assert [row.success for row in await KeyUsageWeek.filter(key_id="wfak_a")] == [11]


async def test_a_flush_of_many_keys_makes_no_lasting_object_a_key(db: TortoiseContext) -> None:
    """Every 10 s a busy process writes the calls of every key that called: at 50,000 keys,
    an object a key alive across a statement (an iterator a key's counts, summing the
    organization's) joined the garbage collector's oldest generation by the ten thousand."""
    keys = [f"wfak_gc{n:05d}" for n in range(2000)]
    counts = {(key_id, ACME, NOON): (n, 1, 0, 0, 0, 0, 0, 0) for n, key_id in enumerate(keys)}

    survivors = await young_survivors(TortoiseCallSink().record_calls(counts))

    assert survivors < len(keys) / 10  # one a key before
    [organization] = await OrganizationUsageHour.all()
    assert (organization.success, organization.rate_limited) == (sum(range(2000)), 2000)
    assert await KeyUsageWeek.filter(key_id__in=keys).count() == len(keys)


async def test_a_batch_with_a_naive_hour_and_an_organization_uuid_is_written_as_utc(
    db: TortoiseContext,
) -> None:
    # A naive hour is UTC and an organization's ID may come as a UUID, on either database.
    naive = NOON.replace(tzinfo=None)
    counts = {("wfak_naive", uuid.UUID(ACME), naive): [2, *[0] * (len(COLUMNS) - 1)]}

    await TortoiseCallSink().record_calls(counts)  # type: ignore[arg-type]

    row = await KeyUsage.get(key_id="wfak_naive")
    assert (row.hour, str(row.organization_id), row.success) == (NOON, ACME, 2)
    day = await KeyUsageDay.get(key_id="wfak_naive")
    assert day.day == NOON.replace(hour=0)


async def _pages(table: str, by: str) -> dict[str, int]:
    """The page of each row of ``table``, by its ``by`` column."""
    rows = await get_connection("default").execute_query_dict(
        f'SELECT "{by}"::text AS "name", (ctid::text::point)[0]::int AS "page" '  # noqa: S608
        f'FROM "{table}"'
    )
    return {row["name"]: row["page"] for row in rows}


async def test_flushes_adding_to_rows_already_there_update_them_on_their_own_pages(
    db: TortoiseContext, database_url: str
) -> None:
    # PostgreSQL only (migration 0013): the tables a flush updates keep room on each page, so
    # that a flush's new version of a row fits beside the old one (a HOT update, no index
    # entry) and the table does not grow by a copy of its rows each flush.
    if not database_url.startswith("postgres"):
        pytest.skip("pages and fillfactor are PostgreSQL's")
    keys = [f"wfak_page{n:04d}" for n in range(600)]
    counts = {(key_id, ACME, NOON): [1, *[0] * (len(COLUMNS) - 1)] for key_id in keys}
    sink = TortoiseCallSink()
    await sink.record_calls(counts)
    await note_key_uses([(key_id, "10.0.0.7", NOON) for key_id in keys])
    tables = {
        "key_usage": "key_id",
        "key_usage_day": "key_id",
        "key_usage_week": "key_id",
        "organization_usage_hour": "organization_id",
        "key_network": "key_id",
    }
    before = {table: await _pages(table, by) for table, by in tables.items()}

    for minutes in (1, 2, 3):
        await sink.record_calls(counts)
        later = NOON + timedelta(minutes=minutes)
        await note_key_uses([(key_id, "10.0.0.7", later) for key_id in keys])

    for table, by in tables.items():
        after = await _pages(table, by)
        moved = [name for name, page in after.items() if page != before[table][name]]
        assert len(moved) <= len(after) // 20, (table, len(moved), len(after))
    assert [row.success for row in await KeyUsage.filter(key_id="wfak_page0599")] == [4]
    seen = await KeyNetwork.get(key_id="wfak_page0599")
    assert seen.last_seen_at == NOON + timedelta(minutes=3)
    options = await get_connection("default").execute_query_dict(
        "SELECT relname, reloptions FROM pg_class WHERE relname = ANY($1::text[])",
        [[*tables, "api_key"]],
    )
    assert {row["relname"]: row["reloptions"] for row in options} == {
        **{table: ["fillfactor=50"] for table in tables},
        "api_key": ["fillfactor=90"],
    }
