"""Trigram indexes for the key search on PostgreSQL (nothing on other databases).

The ``search`` argument of ``apiKeys`` is a case-insensitive substring match on the name and
the Key ID, which Tortoise writes as ``UPPER(CAST(col AS VARCHAR)) LIKE UPPER('%text%')``: a
leading wildcard no B-tree can serve, so every row of the table was read. A ``pg_trgm`` GIN
index on exactly that expression serves such a LIKE for a search of three characters or more.
``pg_trgm`` is a trusted extension (PostgreSQL 13 and later): the database owner may create
it without being a superuser.
"""

from typing import Any

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor

INDEXED = {"api_key_name_trgm": "name", "api_key_key_id_trgm": "key_id"}


async def create_search_indexes(apps: Any, schema_editor: BaseSchemaEditor) -> None:
    if schema_editor.DIALECT != "postgres":
        return
    await schema_editor._run_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for index, column in INDEXED.items():
        await schema_editor._run_sql(
            f'CREATE INDEX IF NOT EXISTS "{index}" ON "api_key" '
            f'USING gin (UPPER(CAST("{column}" AS VARCHAR)) gin_trgm_ops)'
        )


async def drop_search_indexes(apps: Any, schema_editor: BaseSchemaEditor) -> None:
    if schema_editor.DIALECT != "postgres":
        return
    for index in INDEXED:
        await schema_editor._run_sql(f'DROP INDEX IF EXISTS "{index}"')


class Migration(migrations.Migration):
    dependencies = [("wfa_keys", "0003_key_lifecycle")]

    initial = False

    operations = [ops.RunPython(create_search_indexes, drop_search_indexes)]
