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

Keys are disabled in batches of :data:`BATCH_SIZE`, each in one short transaction with its
tokens' deletion, one audit event (and webhook message) per key and one change row (one
notification) naming the whole batch: 400,000 keys are a few dozen transactions and
notifications, not 400,000 (see ``docs/scale.md``). A batch locks its rows with ``FOR NO KEY
UPDATE SKIP LOCKED``: a key being changed by someone else at that moment (a use recorded, an
admin's change) is skipped, never waited for, and the sweep never holds a lock a sign-in or a
key creation waits on for longer than one batch's statements.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import anyio
from tortoise.connection import get_connection
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from wfa_keys.changes import publish_keys_change
from wfa_keys.models import AccessToken, ApiKey, AuditAction, AuditEvent, Organization
from wfa_keys.webhooks.events import announce_batch

__all__ = [
    "BATCH_SIZE",
    "DEFAULT_CHECK_INTERVAL",
    "database_now",
    "disable_inactive_keys",
    "run_periodically",
]

logger = logging.getLogger("wfa_keys.inactivity")

#: Seconds between two checks in a server process.
DEFAULT_CHECK_INTERVAL = 3600.0
#: Keys disabled per transaction, announced by one change row.
BATCH_SIZE = 5000

# The batch on PostgreSQL as one statement (what the portable code below does in five, with
# a model object per key and per audit event): pick and lock, disable, delete the tokens,
# write the audit events. The conditions are those of _inactive_since.
_BATCH_SQL = """
WITH "batch" AS (
    SELECT "id" FROM "api_key"
    WHERE "organization_id" = $1 AND "enabled" AND "id" > $2
      AND ("last_used_at" < $3 OR ("last_used_at" IS NULL AND "created_at" < $3))
      AND ("enabled_at" IS NULL OR "enabled_at" < $3)
      AND ("secret_regenerated_at" IS NULL OR "secret_regenerated_at" < $3)
    ORDER BY "id" LIMIT $4
    FOR NO KEY UPDATE SKIP LOCKED
), "disabled" AS (
    UPDATE "api_key" SET "enabled" = false FROM "batch"
    WHERE "api_key"."id" = "batch"."id"
    RETURNING "api_key"."id", "api_key"."key_id"
), "tokens" AS (
    DELETE FROM "access_token" USING "disabled"
    WHERE "access_token"."key_id" = "disabled"."key_id"
), "events" AS (
    INSERT INTO "audit_event" ("action", "organization_id", "key_id", "detail", "created_at")
    SELECT $5, $1, "key_id", CAST($6::text AS jsonb), now() FROM "disabled"
)
SELECT "id", "key_id" FROM "disabled" ORDER BY "id"
"""


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


async def disable_inactive_keys(
    now: datetime | None = None, *, batch_size: int = BATCH_SIZE
) -> list[str]:
    """Disable every key past its organization's inactivity limit; the Key IDs disabled.

    ``now`` defaults to the database's clock (:func:`database_now`). Each batch of keys is
    disabled in one transaction with its tokens deleted, a ``KEY_AUTO_DISABLED`` audit event
    (and its webhook messages) per key and one change notification for every server process
    naming the batch's keys.
    """
    now = now or await database_now()
    disabled: list[str] = []
    organizations = await Organization.filter(key_inactivity_days__isnull=False).values_list(
        "id", "key_inactivity_days"
    )
    for organization_id, days in organizations:
        cutoff = now - timedelta(days=days)
        after = 0
        while True:
            batch, after = await _disable_batch(
                str(organization_id), days, cutoff, after, batch_size
            )
            if after == 0:
                break
            disabled.extend(batch)
    return disabled


async def _disable_batch(
    organization_id: str, days: int, cutoff: datetime, after: int, batch_size: int
) -> tuple[list[str], int]:
    """Disable the next batch of the organization's inactive keys with an ``id`` above
    ``after``; the Key IDs disabled and the last ``id`` looked at (0: none left)."""
    detail = {"inactivityDays": days}
    async with in_transaction() as connection:
        if connection.capabilities.dialect == "postgres":
            rows = (
                await connection.execute_query(
                    _BATCH_SQL,
                    [
                        *(organization_id, after, cutoff, batch_size),
                        *(AuditAction.KEY_AUTO_DISABLED.value, json.dumps(detail)),
                    ],
                )
            )[1]
            if not rows:
                return [], 0
            key_ids = [row["key_id"] for row in rows]
            last = int(rows[-1]["id"])
        else:
            # Locked as read where the database can (select_for_update is a no-op on SQLite,
            # whose single writer serializes the sweeps anyway).
            keys = (
                await ApiKey.filter(organization_id=organization_id, enabled=True, id__gt=after)
                .filter(_inactive_since(cutoff))
                .order_by("id")
                .limit(batch_size)
                .select_for_update(skip_locked=True, no_key=True)
                .only("id", "key_id")
            )
            if not keys:
                return [], 0
            key_ids = [key.key_id for key in keys]
            # Conditional again: a use or an enable since the read keeps the key as it is.
            changed = await (
                ApiKey.filter(id__in=[key.id for key in keys], enabled=True)
                .filter(_inactive_since(cutoff))
                .update(enabled=False)
            )
            if changed != len(key_ids):
                still: list[str] = await ApiKey.filter(
                    key_id__in=key_ids, enabled=False
                ).values_list("key_id", flat=True)  # type: ignore[assignment]  # flat: values
                key_ids = still
            last = keys[-1].id
            if not key_ids:
                return [], last
            await AccessToken.filter(key_id__in=key_ids).delete()
            await AuditEvent.bulk_create(
                [
                    AuditEvent(
                        action=AuditAction.KEY_AUTO_DISABLED,
                        organization_id=organization_id,
                        key_id=key_id,
                        detail=detail,
                    )
                    for key_id in key_ids
                ]
            )
        await announce_batch(organization_id, AuditAction.KEY_AUTO_DISABLED, key_ids, detail)
        await publish_keys_change(key_ids, organization_id=organization_id, kind="auto_disabled")
    return key_ids, last


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
