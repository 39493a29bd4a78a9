"""Pages of a filter by a statement built once per shape (``graphql/pagination.py``).

The admin list sends the SQL Tortoise built for the first list of a shape again with each
list's own values: the rows, cursors and totals must be those of Tortoise's own queries, for
every shape of filter, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from tortoise.context import TortoiseContext
from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from support.settings import cheap_settings
from wfa_auth import generate_key_id
from wfa_keys.crypto import hasher_for
from wfa_keys.db import parameterized_sql as sql_of
from wfa_keys.graphql import pagination
from wfa_keys.graphql.pagination import count_rows, decode_cursor, encode_cursor, newest_first
from wfa_keys.graphql.types import API_KEY_FIELDS
from wfa_keys.keys import Actor, KeyFilter, KeyManager, KeyStatus
from wfa_keys.models import ApiKey, Organization, Role, User

FIRST = 3
NOW = datetime.now(UTC)


async def _seed() -> tuple[Organization, list[ApiKey]]:
    """Twelve keys of Acme, one a minute (disabled, expired, expiring, in a grace period,
    limited, names with LIKE's wildcards), and three of Globex with the same names."""
    keys = []
    acme = None
    for organization_name in ("Acme", "Globex"):
        organization = await Organization.create(name=organization_name)
        acme = acme or organization
        owners = [
            await User.create(
                email=f"{n}@{organization_name.lower()}.test",
                password_hash="unused",
                role=Role.ADMIN,
                organization=organization,
            )
            for n in range(2)
        ]
        for n in range(12 if organization is acme else 3):
            keys.append(
                await ApiKey.create(
                    key_id=generate_key_id(),
                    name=("deploy 50%_off" if n % 3 == 0 else f"build {n}"),
                    secret_hash="unused",
                    owner=owners[n % 2],
                    organization=organization,
                    enabled=n % 4 != 1,
                    created_at=NOW - timedelta(days=30, minutes=n),
                    expires_at=(
                        NOW - timedelta(days=1)
                        if n % 5 == 2
                        else NOW + timedelta(days=3)
                        if n % 5 == 3
                        else None
                    ),
                    last_used_at=NOW - timedelta(hours=n) if n % 2 else None,
                    last_used_ip="192.0.2.7" if n % 2 else None,
                    previous_secret_hash="unused" if n == 4 else None,
                    previous_secret_expires_at=NOW + timedelta(hours=1) if n == 4 else None,
                    scopes=["workflows:read"],
                    allowed_cidrs=["203.0.113.0/24"] if n == 5 else [],
                    rate_limit_requests=10 if n == 6 else None,
                    rate_limit_per_seconds=60 if n == 6 else None,
                )
            )
    assert acme is not None
    return acme, keys


async def _tortoise_page(matching: KeyFilter, after: str | None) -> list[dict[str, Any]]:
    """The page as Tortoise's own ``.values()`` reads it, one row more."""
    query = matching.query()
    if after is not None:
        created_at, pk = decode_cursor(after)
        query = query.filter(
            Q(created_at__lte=created_at),
            Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=pk),
        )
    rows: list[dict[str, Any]] = (
        await query.order_by("-created_at", "-id").limit(FIRST + 1).values(*API_KEY_FIELDS)
    )
    return rows


async def test_every_shape_of_the_key_list_reads_what_tortoise_reads(
    db: TortoiseContext, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    del db
    acme, keys = await _seed()
    manager = KeyManager(hasher_for(cheap_settings(database_url="unused")))
    actor = Actor.command_line(acme.id)
    built: list[str] = []

    def counting(query: Any) -> tuple[str, list[Any]]:
        built.append(type(query).__name__)
        return sql_of(query)

    monkeypatch.setattr(pagination, "parameterized_sql", counting)
    monkeypatch.setattr(pagination, "_kept", {})
    searches = (None, "DEPLOY 50%_", "50%", keys[7].key_id.upper(), keys[7].key_id[5:12])
    cursor = encode_cursor(keys[2].created_at, keys[2].id)  # after Acme's third key
    for round_number in range(2):
        for search, status, days in itertools.product(searches, (None, *KeyStatus), (None, 7, 2)):
            matching = manager.key_filter(
                actor, search=search, status=status, expiring_within_days=days, now=NOW
            )
            for after in (None, cursor):
                page = await newest_first(matching, fields=API_KEY_FIELDS, first=FIRST, after=after)
                expected = await _tortoise_page(matching, after)
                assert (page.rows, page.has_next_page) == (expected[:FIRST], len(expected) > FIRST)
                if page.rows:
                    assert decode_cursor(page.end_cursor or "") == (
                        page.rows[-1]["created_at"],
                        page.rows[-1]["id"],
                    )
                assert await page.count() == await matching.query().count()
        if round_number == 0:
            first_round = len(built)
            assert first_round > 0
    # The second round built nothing: every shape's statements were kept and sent again.
    assert len(built) == first_round
    assert not [r for r in caplog.records if r.name == "wfa_keys.graphql.pagination"]


async def test_the_kept_statement_reads_the_other_organization_with_its_own_values(
    db: TortoiseContext,
) -> None:
    del db
    acme, keys = await _seed()
    globex = await Organization.get(name="Globex")
    manager = KeyManager(hasher_for(cheap_settings(database_url="unused")))

    pages = [
        await newest_first(
            manager.key_filter(Actor.command_line(organization.id), search="deploy"),
            fields=API_KEY_FIELDS,
            first=FIRST,
            after=None,
        )
        for organization in (acme, globex)
    ]

    assert [[row["key_id"] for row in page.rows] for page in pages] == [
        [key.key_id for key in keys[:12] if key.name.startswith("deploy")][:FIRST],
        [key.key_id for key in keys[12:] if key.name.startswith("deploy")],
    ]


@dataclass(frozen=True)
class _Miscounted:
    """A filter whose parameters are not those of its query's SQL."""

    model: ClassVar[type[ApiKey]] = ApiKey
    organization_id: Any
    shape = ("miscounted",)

    def query(self) -> QuerySet[ApiKey]:
        return ApiKey.filter(organization_id=self.organization_id, enabled=True)

    def parameters(self) -> list[Any]:
        return [str(self.organization_id)]  # the enabled flag is missing


async def test_a_filter_whose_parameters_differ_from_tortoises_is_sent_as_tortoise_builds_it(
    db: TortoiseContext, caplog: pytest.LogCaptureFixture
) -> None:
    del db
    acme, keys = await _seed()
    enabled = [key.key_id for key in keys[:12] if key.enabled]

    for _ in range(2):
        page = await newest_first(
            _Miscounted(acme.id), fields=API_KEY_FIELDS, first=100, after=None
        )
        assert [row["key_id"] for row in page.rows] == enabled
        assert await count_rows(_Miscounted(acme.id)) == len(enabled)

    errors = [r for r in caplog.records if r.name == "wfa_keys.graphql.pagination"]
    assert len(errors) == 4  # each time, page and count: never kept
    assert all(r.levelno == logging.ERROR for r in errors)
