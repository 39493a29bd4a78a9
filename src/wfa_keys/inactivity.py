"""Disabling keys that nobody used for a while, as an organization chooses.

An organization's ``key_inactivity_days`` (null: never) disables each enabled key neither used,
created, enabled nor regenerated for that many days (an admin's enable or regeneration is
activity: a key re-enabled a moment ago is not disabled again by the next run). Time is the
database's clock, the one every process shares, never this process's: a checker whose clock
runs days fast must not disable a key used a second ago.

``wfa-keys serve`` runs the check periodically in every process; ``wfa-keys
disable-inactive-keys`` runs it once, for a cron job. Running it in several processes at once
is safe: each key is disabled by one conditional update, and only the process whose update
changed the row writes the audit event and the change notification.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import anyio
from tortoise.connection import get_connection
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from wfa_keys.audit import record_event
from wfa_keys.changes import publish_key_change
from wfa_keys.models import ApiKey, AuditAction, Organization
from wfa_keys.store import TortoiseTokenStore

__all__ = ["DEFAULT_CHECK_INTERVAL", "database_now", "disable_inactive_keys", "run_periodically"]

logger = logging.getLogger("wfa_keys.inactivity")

#: Seconds between two checks in a server process.
DEFAULT_CHECK_INTERVAL = 3600.0


def _inactive_since(cutoff: datetime) -> Q:
    used = Q(last_used_at__lt=cutoff) | Q(last_used_at__isnull=True, created_at__lt=cutoff)
    enabled = Q(enabled_at__isnull=True) | Q(enabled_at__lt=cutoff)
    regenerated = Q(secret_regenerated_at__isnull=True) | Q(secret_regenerated_at__lt=cutoff)
    return used & enabled & regenerated


async def database_now() -> datetime:
    """The database server's current time (UTC), the clock every process shares."""
    connection = get_connection("default")
    if connection.capabilities.dialect == "postgres":
        _count, rows = await connection.execute_query("SELECT now() AS now")
        now: datetime = rows[0]["now"]
        return now.astimezone(UTC)
    # SQLite's clock, with milliseconds (CURRENT_TIMESTAMP has whole seconds only).
    _count, rows = await connection.execute_query(
        "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now') AS now"
    )
    return datetime.fromisoformat(str(rows[0]["now"])).replace(tzinfo=UTC)


async def disable_inactive_keys(now: datetime | None = None) -> list[str]:
    """Disable every key past its organization's inactivity limit; the Key IDs disabled.

    ``now`` defaults to the database's clock (:func:`database_now`). Each key is disabled in
    its own transaction with its tokens deleted, a ``KEY_AUTO_DISABLED`` audit event and a
    change notification for every server process.
    """
    now = now or await database_now()
    disabled: list[str] = []
    organizations = await Organization.filter(key_inactivity_days__isnull=False).values_list(
        "id", "key_inactivity_days"
    )
    for organization_id, days in organizations:
        cutoff = now - timedelta(days=days)
        key_ids: list[str] = await (
            ApiKey.filter(organization_id=organization_id, enabled=True)
            .filter(_inactive_since(cutoff))
            .values_list("key_id", flat=True)
        )  # type: ignore[assignment]  # flat=True gives the values, not tuples
        for key_id in key_ids:
            async with in_transaction():
                # Conditional: a use or an enable since the read above keeps the key as it is.
                changed = await (
                    ApiKey.filter(key_id=key_id, enabled=True)
                    .filter(_inactive_since(cutoff))
                    .update(enabled=False)
                )
                if not changed:
                    continue
                await TortoiseTokenStore().delete_tokens_for_key(key_id)
                await record_event(
                    AuditAction.KEY_AUTO_DISABLED,
                    organization_id=organization_id,
                    actor=None,
                    client_ip=None,
                    key_id=key_id,
                    detail={"inactivityDays": days},
                )
                await publish_key_change(
                    key_id, organization_id=organization_id, kind="auto_disabled"
                )
            disabled.append(key_id)
    return disabled


async def run_periodically(
    interval: float = DEFAULT_CHECK_INTERVAL,
    *,
    on_disabled: Callable[[str], Awaitable[None]] | None = None,
) -> None:
    """Check every ``interval`` seconds until cancelled; a failed check is logged and retried."""
    while True:
        await anyio.sleep(interval)
        try:
            key_ids = await disable_inactive_keys()
        except Exception as exc:  # the next round tries again; the type is enough to diagnose
            logger.warning("could not disable inactive keys (%s)", type(exc).__name__)
            continue
        if key_ids:
            logger.info("disabled %d inactive key(s)", len(key_ids))
        if on_disabled is not None:
            for key_id in key_ids:
                await on_disabled(key_id)
