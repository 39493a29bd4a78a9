"""Rows updated in place: room left on the pages of the tables flushes update, on PostgreSQL.

Every flush of call analytics (``wfa_keys.usage``, every 10 s) adds to the current hour's row
of each key that was called, and to its day and week rows and its organization's hour row:
at 50,000 keys, 150,000 rows in one statement a table. Every flush of last uses (every 60 s)
moves ``api_key.last_used_at`` and each address's ``key_network.last_seen_at`` forward for
every key used meanwhile. With full pages (PostgreSQL's default ``fillfactor`` of 100), a
row's new version never fits on its own page: every update went to another page and into
each of the table's indexes (nine on ``api_key``, two of them trigram indexes), and the
tables grew by a copy of those rows each flush until vacuumed. With room on the page, the
update stays there (a HOT update: no index entry) and the old version is reclaimed from the
page by a later update. None of the columns these flushes write is indexed.

- The usage tables and ``key_network``: ``fillfactor = 50``. A flush updates every row of
  a page it touches (the rows of one hour, written together), in one transaction: the page
  must hold a second version of each. Measured with 50,000 rows updated eight times: the
  flush took half the time, 348,216 of 350,000 updates were HOT (153 before), and the table
  stayed at 1,787 pages (6,894 before).
- ``api_key``: ``fillfactor = 90``. A flush updates the keys used in the last minute, a few
  rows of a page, and the table is the largest: a tenth of each page is kept free.

PostgreSQL applies it to pages written from now on; ``VACUUM FULL`` rewrites older ones.
SQLite has no such setting: nothing changes there.
"""

from typing import Any

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor

FILLFACTORS = {
    "key_usage": 50,
    "key_usage_day": 50,
    "key_usage_week": 50,
    "organization_usage_hour": 50,
    "key_network": 50,
    "api_key": 90,
}


async def keep_room(apps: Any, schema_editor: BaseSchemaEditor) -> None:
    if schema_editor.DIALECT == "postgres":
        for table, fillfactor in FILLFACTORS.items():
            await schema_editor._run_sql(f'ALTER TABLE "{table}" SET (fillfactor = {fillfactor})')


async def fill_pages(apps: Any, schema_editor: BaseSchemaEditor) -> None:
    if schema_editor.DIALECT == "postgres":
        for table in FILLFACTORS:
            await schema_editor._run_sql(f'ALTER TABLE "{table}" RESET (fillfactor)')


class Migration(migrations.Migration):
    dependencies = [("wfa_keys", "0012_model_state")]

    initial = False

    operations = [ops.RunPython(keep_room, fill_pages)]
