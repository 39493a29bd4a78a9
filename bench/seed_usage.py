"""Seed a database with a year of hourly call analytics for 1,000 keys, in SQL.

One organization (``Usage bench``), its admin ``bench@usage.example`` (password
``bench usage password``), 1,000 keys whose secret hashes are placeholders (nothing here
runs argon2 but the admin's one password hash), and for each key one ``key_usage`` row per
hour of the last 365 days: 8,760,000 rows, made by PostgreSQL's ``generate_series``. The
rows are written hour after hour, every key's row of an hour together, as the service's
flushes write them: a key's month is spread over 720 pages of the table, not packed in a
few (written key after key, the per-key query read an unrealistically compact table).
The rollups ``organizationUsage`` reads (``organization_usage_hour``, ``key_usage_day``,
``key_usage_week``) are then filled from those rows by migration 0011's own statements.

    .venv/bin/python bench/seed_usage.py postgres://postgres@127.0.0.1:5432/wfa_bench
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import time

from tortoise.connection import get_connection

from wfa_keys.db import database
from wfa_keys.models import (
    ApiKey,
    KeyUsage,
    KeyUsageDay,
    KeyUsageWeek,
    Organization,
    OrganizationUsageHour,
    Role,
    User,
)
from wfa_keys.settings import Settings
from wfa_keys.users import create_user

ORGANIZATION = "Usage bench"
EMAIL = "bench@usage.example"
PASSWORD = "bench usage password"
KEYS = 1000
DAYS = 365

_KEYS_SQL = """
INSERT INTO api_key (key_id, name, secret_hash, enabled, created_at, scopes, allowed_cidrs,
                     owner_id, organization_id)
SELECT 'wfak_bench' || lpad(n::text, 15, '0'), 'Bench key ' || n, 'not-a-hash', true, now(),
       '["workflows:read"]', '[]', $1::uuid, $2::uuid
FROM generate_series(1, $3::int) AS n
"""
_USAGE_SQL = """
INSERT INTO key_usage (key_id, organization_id, hour, success, rate_limited, quota_exceeded,
                       insufficient_scope, ip_not_allowed, disabled, expired, invalid_secret)
SELECT 'wfak_bench' || lpad(k::text, 15, '0'), $1::uuid, h,
       (k * 7 + extract(hour FROM h)::int) % 97, (k + extract(day FROM h)::int) % 5, 0,
       k % 3, 0, 0, 0, (k + extract(hour FROM h)::int) % 2
FROM generate_series(date_trunc('hour', now()) - make_interval(days => $3::int),
                     date_trunc('hour', now()), interval '1 hour') AS h,
     generate_series(1, $2::int) AS k
"""


async def seed(url: str) -> None:
    async with database(url):
        connection = get_connection("default")
        if connection.capabilities.dialect != "postgres":
            raise SystemExit("the usage bench seeds PostgreSQL (generate_series)")
        organization = await Organization.get_or_none(name=ORGANIZATION)
        if organization is not None:
            for usage in (KeyUsage, KeyUsageDay, KeyUsageWeek, OrganizationUsageHour):
                await usage.filter(organization_id=organization.id).delete()
            await ApiKey.filter(organization_id=organization.id).delete()
            await User.filter(organization_id=organization.id).delete()
            await organization.delete()
        admin = await create_user(
            Settings(database_url=url),
            email=EMAIL,
            password=PASSWORD,
            organization=ORGANIZATION,
            role=Role.ADMIN,
        )
        organization = await Organization.get(name=ORGANIZATION)
        organization.has_workflow_automation = True
        await organization.save(update_fields=["has_workflow_automation"])
        started = time.perf_counter()
        await connection.execute_query(_KEYS_SQL, [str(admin.id), str(organization.id), KEYS])
        await connection.execute_query(_USAGE_SQL, [str(organization.id), KEYS, DAYS])
        await connection.execute_query("ANALYZE key_usage")
        rows = await KeyUsage.filter(organization_id=organization.id).count()
        print(f"seeded {rows:,} rows of key_usage in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        rollups = importlib.import_module("wfa_keys.migrations.0011_usage_rollups")
        for statement in rollups.backfill_sql("postgres", where='"organization_id" = $1::uuid'):
            await connection.execute_query(statement, [str(organization.id)])
        for table in ("organization_usage_hour", "key_usage_day", "key_usage_week"):
            await connection.execute_query(f"ANALYZE {table}")
        print(f"filled the rollups in {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url")
    asyncio.run(seed(parser.parse_args().database_url))


if __name__ == "__main__":
    main()
