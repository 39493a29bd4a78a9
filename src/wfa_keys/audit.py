"""Writing audit events. Call :func:`record_event` inside the transaction of the change,
so that the event exists if and only if the change does. Events never hold a secret or a
hash: only the action, who, which Key ID, when and from which address.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from tortoise.transactions import in_transaction

from wfa_keys.models import AuditAction, AuditEvent, User
from wfa_keys.webhooks.events import announce_audit_event

__all__ = [
    "COMMAND_LINE_ACTOR",
    "prune_audit_events",
    "record_event",
    "record_throttled_sign_in",
    "throttled_subject",
]

#: The audit log's ``actor_email`` of a change made with the ``wfa-keys`` command line.
COMMAND_LINE_ACTOR = "wfa-keys command line"

# Refused sign-ins of one address in one window searched for the pair's event; beyond
# this many distinct emails the oldest pairs start new events (still one per request at most).
_MAX_CANDIDATES = 500


async def record_event(
    action: AuditAction,
    *,
    organization_id: UUID | str | None,
    actor: User | None,
    client_ip: str | None,
    key_id: str | None = None,
    detail: dict[str, Any] | None = None,
    actor_name: str | None = None,
) -> AuditEvent:
    """Store one audit event on the current connection (the caller's transaction), with the
    webhook messages it causes (:func:`~wfa_keys.webhooks.events.announce_audit_event`):
    every key change is audited here, so the outbox is written here, in the same transaction.

    ``actor_name`` names an actor that is not a user (the command line) in ``actor_email``.
    """
    event = await AuditEvent.create(
        action=action,
        organization_id=organization_id,
        actor_id=actor.id if actor is not None else None,
        actor_email=actor.email if actor is not None else actor_name,
        key_id=key_id,
        client_ip=client_ip[:64] if client_ip else None,
        detail=detail,
    )
    await announce_audit_event(event)
    return event


def throttled_subject(email: str, client_ip: str | None) -> str:
    """A short tag telling (email, address) pairs of one address apart in one window.

    Eight hex digits (32 bits): enough that two emails tried from one address in one window
    practically never share it, too few to confirm a guess of what was typed in the email
    field (which may be a password typed in the wrong box) against the table.
    """
    text = f"{email}\0{client_ip or ''}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(text).hexdigest()[:8]


def address_subject(client_ip: str | None, organization_id: object) -> str:
    """The tag of the refusals of one address (and one organization) once the address's own
    limit has tripped, whatever the emails."""
    text = f"address\0{client_ip or ''}\0{organization_id or ''}".encode()
    return "a" + hashlib.sha256(text).hexdigest()[:8]


async def record_throttled_sign_in(
    *,
    email: str,
    user: User | None,
    client_ip: str | None,
    window: float,
    per_address: bool = False,
) -> AuditEvent:
    """Record a refused (throttled) sign-in, aggregated so that a flood adds few rows.

    Refused by the limit of one (email, address) pair: one ``LOGIN_THROTTLED`` event per pair
    per window. Refused by the address's own limit (``per_address``, many emails from one
    address): one event per address and organization per window, whatever the emails, with
    no actor (the emails are not recorded), the organization of the account tried if it
    exists. So 1,000 refused sign-ins with distinct unknown emails from one address add one
    row. ``detail["count"]`` counts the refusals, updated in place.

    Find-or-create runs under a lock of the subject held until commit, so that it holds
    across server processes: ``pg_advisory_xact_lock`` on PostgreSQL; SQLite runs one write
    transaction at a time. A refusal within ``window`` seconds of the subject's last event
    increments its count; a later one starts a new event.
    """
    organization_id = user.organization_id if user is not None else None
    if per_address:
        subject = address_subject(client_ip, organization_id)
        actor = None
    else:
        subject = throttled_subject(email, client_ip)
        actor = user
    ip = client_ip[:64] if client_ip else None
    async with in_transaction() as connection:
        if connection.capabilities.dialect == "postgres":
            await connection.execute_query("SELECT pg_advisory_xact_lock($1)", [_lock_id(subject)])
        since = datetime.now(UTC) - timedelta(seconds=window)
        query = AuditEvent.filter(action=AuditAction.LOGIN_THROTTLED, created_at__gte=since)
        query = query.filter(client_ip=ip) if ip else query.filter(client_ip__isnull=True)
        for event in await query.order_by("-id").limit(_MAX_CANDIDATES):
            detail = event.detail or {}
            if detail.get("subject") == subject:
                count = int(detail.get("count", 1)) + 1
                event.detail = {**detail, "count": count}
                await event.save(update_fields=["detail"])
                return event
        return await record_event(
            AuditAction.LOGIN_THROTTLED,
            organization_id=organization_id,
            actor=actor,
            client_ip=client_ip,
            detail={"count": 1, "subject": subject},
        )


async def prune_audit_events(retention_days: int, *, now: datetime | None = None) -> int:
    """Delete the audit events older than ``retention_days``; returns how many went.

    ``now`` defaults to this process's clock; pruning a few seconds early or late is harmless
    at the scale of days.
    """
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    deleted: int = await AuditEvent.filter(created_at__lt=cutoff).delete()
    return deleted


def _lock_id(subject: str) -> int:
    """A signed 64-bit advisory-lock ID for a pair, apart from any other lock of the service."""
    digest = hashlib.sha256(f"wfa-keys:login-throttled:{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
