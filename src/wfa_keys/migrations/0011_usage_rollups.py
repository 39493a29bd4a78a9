"""Usage rollups: an organization's calls per hour, and each key's per UTC day and week.

``organizationUsage`` summed every ``key_usage`` row of its range twice (by hour and by
key): 168,000 rows for a week of 1,000 keys. ``organization_usage_hour`` holds one row per
organization and hour (its buckets), ``key_usage_day`` and ``key_usage_week`` one per key
and day or week (its ranking over whole days and weeks); the flush that writes
``key_usage`` adds to all three in the same transaction. This migration fills them from the
``key_usage`` rows already there.
"""

from typing import Any

from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor

#: wfa_auth.CALL_OUTCOMES as they were when this migration was written: a migration keeps
#: its own copy, so that a later change of the outcomes does not rewrite history.
COUNTS = (
    "success",
    "rate_limited",
    "quota_exceeded",
    "insufficient_scope",
    "ip_not_allowed",
    "disabled",
    "expired",
    "invalid_secret",
)
#: The start of the UTC day and of the week (Monday) of a column, as each dialect stores a
#: datetime (SQLite: Tortoise's ISO text, "2026-03-10 12:00:00+00:00").
STARTS = {
    "postgres": {
        "day": "date_trunc('day', {0} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
        "week": "date_trunc('week', {0} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    },
    "sqlite": {
        "day": "substr({0}, 1, 10) || ' 00:00:00+00:00'",
        "week": "date(substr({0}, 1, 10), '-' || ((CAST(strftime('%w', substr({0}, 1, 10)) "
        "AS INTEGER) + 6) % 7) || ' days') || ' 00:00:00+00:00'",
    },
}


def backfill_sql(dialect: str, where: str = "") -> list[str]:
    """The statements that fill the rollups from the ``key_usage`` rows matching ``where``
    (an SQL condition on ``organization_id``, or every row), in order;
    ``bench/seed_usage.py`` runs them too.

    Rows are written in time order, as the flushes write them: the rows of a range are
    then on a few pages, not one page each (a week of 1,000 keys' days read 6,535 pages
    as a hash aggregate leaves them, 136 in day order).
    """
    columns = ", ".join(f'"{column}"' for column in COUNTS)
    sums = ", ".join(f'SUM("{column}")' for column in COUNTS)
    condition = f" WHERE {where}" if where else ""
    day = STARTS[dialect]["day"].format('"hour"')
    week = STARTS[dialect]["week"].format('"day"')
    return [
        f'INSERT INTO "organization_usage_hour" ("organization_id", "hour", {columns}) '
        f'SELECT "organization_id", "hour", {sums} FROM "key_usage"{condition} '
        'GROUP BY "organization_id", "hour" ORDER BY "hour", "organization_id"',
        f'INSERT INTO "key_usage_day" ("key_id", "organization_id", "day", {columns}) '
        f'SELECT "key_id", "organization_id", {day}, {sums} FROM "key_usage"{condition} '
        f'GROUP BY "key_id", "organization_id", {day} ORDER BY {day}, "key_id"',
        f'INSERT INTO "key_usage_week" ("key_id", "organization_id", "week", {columns}) '
        f'SELECT "key_id", "organization_id", {week}, {sums} FROM "key_usage_day"{condition} '
        f'GROUP BY "key_id", "organization_id", {week} ORDER BY {week}, "key_id"',
    ]


async def backfill(apps: Any, schema_editor: BaseSchemaEditor) -> None:
    for statement in backfill_sql(schema_editor.DIALECT):
        await schema_editor._run_sql(statement)


async def empty(apps: Any, schema_editor: BaseSchemaEditor) -> None:
    """Nothing to undo: dropping the tables drops their rows."""


def _counts() -> list[tuple[str, fields.Field[Any]]]:
    return [(column, fields.BigIntField(default=0)) for column in COUNTS]


def _id() -> tuple[str, fields.Field[Any]]:
    return ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True))


class Migration(migrations.Migration):
    dependencies = [("wfa_keys", "0010_scale_indexes")]

    initial = False

    operations = [
        ops.CreateModel(
            name="OrganizationUsageHour",
            fields=[
                _id(),
                ("organization_id", fields.UUIDField()),
                ("hour", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                *_counts(),
            ],
            options={
                "table": "organization_usage_hour",
                "app": "wfa_keys",
                "unique_together": (("organization_id", "hour"),),
                "pk_attr": "id",
                "table_description": "An organization's calls in one hour, by outcome.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="KeyUsageDay",
            fields=[
                _id(),
                ("key_id", fields.CharField(max_length=64)),
                ("organization_id", fields.UUIDField()),
                ("day", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                *_counts(),
            ],
            options={
                "table": "key_usage_day",
                "app": "wfa_keys",
                "unique_together": (("key_id", "day"),),
                "indexes": [Index(fields=["organization_id", "day"])],
                "pk_attr": "id",
                "table_description": "One key's calls in one UTC day, by outcome.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="KeyUsageWeek",
            fields=[
                _id(),
                ("key_id", fields.CharField(max_length=64)),
                ("organization_id", fields.UUIDField()),
                ("week", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                *_counts(),
            ],
            options={
                "table": "key_usage_week",
                "app": "wfa_keys",
                "unique_together": (("key_id", "week"),),
                "indexes": [Index(fields=["organization_id", "week"])],
                "pk_attr": "id",
                "table_description": "One key's calls in one week (from Monday), by outcome.",
            },
            bases=["Model"],
        ),
        ops.RunPython(backfill, empty),
    ]
