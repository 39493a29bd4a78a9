"""Audit retention: events past ``WFA_AUDIT_RETENTION_DAYS`` are deleted, by serve too."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from tortoise.context import TortoiseContext

from wfa_auth import MemoryThrottleStore
from wfa_keys import app as app_module
from wfa_keys.audit import prune_audit_events
from wfa_keys.models import AuditAction, AuditEvent

NOW = datetime(2026, 6, 1, tzinfo=UTC)


async def _event(days_ago: float, now: datetime = NOW) -> int:
    event = await AuditEvent.create(action=AuditAction.LOGIN_FAILED, client_ip="192.0.2.1")
    await AuditEvent.filter(id=event.id).update(created_at=now - timedelta(days=days_ago))
    return int(event.id)


async def test_events_older_than_the_retention_are_pruned_and_no_others(
    db: TortoiseContext,
) -> None:
    old = await _event(365.01)
    kept = await _event(364.99)

    assert await prune_audit_events(365, now=NOW) == 1

    assert [e.id for e in await AuditEvent.all()] == [kept]
    assert old != kept


async def test_serve_housekeeping_prunes_the_audit_log(
    db: TortoiseContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    await _event(31, now)
    kept = await _event(29, now)
    monkeypatch.setattr(app_module, "HOUSEKEEPING_INTERVAL", 0.01)

    task = asyncio.create_task(
        app_module._housekeeping(MemoryThrottleStore(), audit_retention_days=30)
    )
    try:
        for _ in range(500):  # bounded: 5 s at most
            if await AuditEvent.all().count() == 1:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()

    assert [e.id for e in await AuditEvent.all()] == [kept]
