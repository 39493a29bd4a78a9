"""Keys nobody used for their organization's inactivity limit are disabled, once, with audit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.context import TortoiseContext

from wfa_auth import generate_key_id
from wfa_keys.inactivity import database_now, disable_inactive_keys
from wfa_keys.models import (
    AccessToken,
    ApiKey,
    AuditAction,
    AuditEvent,
    KeyChange,
    Organization,
    Role,
    User,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)


async def _org(name: str, days: int | None) -> tuple[Organization, User]:
    org = await Organization.create(
        name=name, has_workflow_automation=True, key_inactivity_days=days
    )
    owner = await User.create(
        email=f"admin@{name.lower()}.test",
        password_hash="unused",
        role=Role.ADMIN,
        organization=org,
    )
    return org, owner


async def _key(
    org: Organization,
    owner: User,
    *,
    created_days_ago: int,
    used_days_ago: int | None = None,
    enabled: bool = True,
) -> str:
    key = await ApiKey.create(
        key_id=generate_key_id(),
        name="k",
        secret_hash="unused",
        enabled=enabled,
        owner=owner,
        organization=org,
        scopes=[],
        allowed_cidrs=[],
    )
    last_used = None if used_days_ago is None else NOW - timedelta(days=used_days_ago)
    await ApiKey.filter(id=key.id).update(
        created_at=NOW - timedelta(days=created_days_ago), last_used_at=last_used
    )
    return key.key_id


async def test_keys_neither_used_nor_created_within_the_limit_are_disabled(
    db: TortoiseContext,
) -> None:
    org, owner = await _org("Acme", 30)
    stale_unused = await _key(org, owner, created_days_ago=31)
    stale_used = await _key(org, owner, created_days_ago=400, used_days_ago=31)
    fresh_unused = await _key(org, owner, created_days_ago=29)
    recently_used = await _key(org, owner, created_days_ago=400, used_days_ago=1)
    await AccessToken.create(
        token_hash="a" * 64, key_id=stale_used, secret_fingerprint="f", expires_at=NOW
    )

    disabled = await disable_inactive_keys(NOW)

    assert sorted(disabled) == sorted([stale_unused, stale_used])
    enabled = dict(await ApiKey.all().values_list("key_id", "enabled"))
    assert enabled == {
        stale_unused: False,
        stale_used: False,
        fresh_unused: True,
        recently_used: True,
    }
    assert not await AccessToken.filter(key_id=stale_used).exists()
    events = await AuditEvent.filter(action=AuditAction.KEY_AUTO_DISABLED).values(
        "key_id", "detail", "actor_id", "organization_id"
    )
    assert sorted(e["key_id"] for e in events) == sorted(disabled)
    assert all(e["detail"] == {"inactivityDays": 30} and e["actor_id"] is None for e in events)
    changes: list[Any] = await KeyChange.all().values_list("key_id", "key_ids")
    assert len(changes) == 1  # one batch, one change row naming its keys
    assert changes[0][0] is None
    assert sorted(changes[0][1]) == sorted(disabled)


async def test_a_large_sweep_runs_in_batches_each_with_one_change_row(
    db: TortoiseContext,
) -> None:
    org, owner = await _org("Acme", 30)
    stale = {await _key(org, owner, created_days_ago=31) for _ in range(7)}
    fresh = await _key(org, owner, created_days_ago=1)

    disabled = await disable_inactive_keys(NOW, batch_size=3)

    assert sorted(disabled) == sorted(stale)
    batches: list[Any] = await KeyChange.all().order_by("id").values_list("key_ids", flat=True)
    assert [len(batch) for batch in batches] == [3, 3, 1]
    assert sorted(key for batch in batches for key in batch) == sorted(stale)
    assert (await ApiKey.get(key_id=fresh)).enabled
    assert await AuditEvent.filter(action=AuditAction.KEY_AUTO_DISABLED).count() == 7


async def test_organizations_without_a_limit_and_disabled_keys_are_left_alone(
    db: TortoiseContext,
) -> None:
    org, owner = await _org("Acme", None)
    await _key(org, owner, created_days_ago=4000)
    limited, limited_owner = await _org("Globex", 1)
    await _key(limited, limited_owner, created_days_ago=400, enabled=False)

    assert await disable_inactive_keys(NOW) == []
    assert not await AuditEvent.exists()


async def test_concurrent_checks_disable_each_key_once(db: TortoiseContext) -> None:
    org, owner = await _org("Acme", 7)
    keys = {await _key(org, owner, created_days_ago=8) for _ in range(3)}

    results = await asyncio.gather(*(disable_inactive_keys(NOW) for _ in range(4)))

    disabled = [key_id for result in results for key_id in result]
    assert sorted(disabled) == sorted(keys)
    assert await AuditEvent.filter(action=AuditAction.KEY_AUTO_DISABLED).count() == 3


async def test_a_key_enabled_again_counts_as_active(db: TortoiseContext) -> None:
    org, owner = await _org("Acme", 30)
    key_id = await _key(org, owner, created_days_ago=400, used_days_ago=100)
    await ApiKey.filter(key_id=key_id).update(enabled_at=NOW - timedelta(days=1))

    assert await disable_inactive_keys(NOW) == []
    assert (await ApiKey.get(key_id=key_id)).enabled
    # Once the enable itself is older than the limit, the key is inactive again.
    assert await disable_inactive_keys(NOW + timedelta(days=30)) == [key_id]


async def test_a_key_regenerated_recently_counts_as_active(db: TortoiseContext) -> None:
    org, owner = await _org("Acme", 30)
    key_id = await _key(org, owner, created_days_ago=400)
    await ApiKey.filter(key_id=key_id).update(secret_regenerated_at=NOW - timedelta(minutes=1))

    assert await disable_inactive_keys(NOW) == []
    assert (await ApiKey.get(key_id=key_id)).enabled


async def test_the_check_uses_the_database_clock_not_the_process_clock(
    db: TortoiseContext, monkeypatch: Any
) -> None:
    org, owner = await _org("Acme", 1)
    key_id = await _key(org, owner, created_days_ago=400)
    used = await database_now() - timedelta(seconds=1)
    await ApiKey.filter(key_id=key_id).update(last_used_at=used)

    class FastClock(datetime):
        """This process's clock, two days ahead of the database's."""

        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]  # a plain one
            return datetime.now(tz) + timedelta(days=2)

        @classmethod
        def fromisoformat(cls, text: str) -> datetime:  # type: ignore[override]  # likewise
            return datetime.fromisoformat(text)

    monkeypatch.setattr("wfa_keys.inactivity.datetime", FastClock)

    assert await disable_inactive_keys() == []
    assert (await ApiKey.get(key_id=key_id)).enabled


async def test_database_now_is_the_current_utc_time(db: TortoiseContext) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    now = await database_now()
    assert now.tzinfo is not None
    assert before <= now <= datetime.now(UTC) + timedelta(seconds=5)
