"""Indexes for organizations of a million keys, and change rows that list many keys.

Each admin query shape reads an index, not the table (``tests/service/graphql/test_query_plans.py``
asserts it on PostgreSQL):

- a page, newest first: ``(organization_id, created_at, id)``, walked in the order of the
  page from the cursor on (the old ``(organization_id, created_at)`` index left ties on
  ``created_at`` to a sort); on PostgreSQL it also carries ``enabled`` and ``expires_at``
  (``INCLUDE``), so that ``totalCount`` with a status is counted from the index alone;
- ``status: DISABLED``: the same columns, partial on the disabled keys (few, found at once);
- ``status: EXPIRED`` and ``expiringWithinDays``: ``(organization_id, expires_at)``;
- a search by a full Key ID: ``UPPER(key_id)``, a B-tree that finds the one key (a trigram
  index answers it too, but reads the posting lists of twenty-odd trigrams).

``key_change.key_ids`` lets one change row (and one notification) announce a batch of keys,
as the inactivity sweep writes them.
"""

import functools
from json import dumps, loads
from typing import Any

from tortoise import fields, migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor

PAGE = '("organization_id", "created_at", "id")'
INDEXES = {
    "api_key_org_created_id": (PAGE, ' INCLUDE ("enabled", "expires_at")', ""),
    "api_key_org_disabled": (PAGE, ' INCLUDE ("expires_at")', ' WHERE "enabled" = {false}'),
    "api_key_org_expires": ('("organization_id", "expires_at")', "", ""),
    "api_key_key_id_upper": ('(UPPER(CAST("key_id" AS VARCHAR)))', "", ""),
}


async def create_scale_indexes(apps: Any, schema_editor: BaseSchemaEditor) -> None:
    postgres = schema_editor.DIALECT == "postgres"
    for index, (columns, include, where) in INDEXES.items():
        await schema_editor._run_sql(
            f'CREATE INDEX IF NOT EXISTS "{index}" ON "api_key" {columns}'
            + (include if postgres else "")  # SQLite has no INCLUDE
            + where.format(false="false" if postgres else "0")
        )


async def drop_scale_indexes(apps: Any, schema_editor: BaseSchemaEditor) -> None:
    for index in INDEXES:
        await schema_editor._run_sql(f'DROP INDEX IF EXISTS "{index}"')


class Migration(migrations.Migration):
    dependencies = [("wfa_keys", "0009_change_stream")]

    initial = False

    operations = [
        ops.AddField(
            model_name="KeyChange",
            name="key_ids",
            field=fields.JSONField(
                null=True,
                description="The keys of a batch change (key_id is then null), or null.",
                encoder=functools.partial(dumps, separators=(",", ":")),
                decoder=loads,
            ),
        ),
        ops.RunPython(create_scale_indexes, drop_scale_indexes),
    ]
