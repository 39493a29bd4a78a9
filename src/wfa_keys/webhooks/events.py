"""Webhook event types and the outbox they are written to.

:func:`enqueue` writes one :class:`~wfa_keys.models.WebhookMessage` per enabled endpoint of
the organization that listens to the event, on the caller's connection: called inside the
transaction of a change, the messages exist if and only if the change is committed (a crash
neither loses nor invents one). :func:`announce_audit_event` is the one place the key
lifecycle reaches: :func:`wfa_keys.audit.record_event` calls it for every audit event it
stores, in the same transaction.

Payloads follow the Standard Webhooks shape ``{"type", "timestamp", "data"}``; ``data``
names the organization and the key and says what changed. They never hold a secret or a hash.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from wfa_keys.models import ApiKey, AuditAction, AuditEvent, Organization, WebhookEndpoint
from wfa_keys.models import WebhookMessage as Message
from wfa_keys.webhooks.signing import new_message_id

__all__ = [
    "EVENT_TYPES",
    "TEST_EVENT",
    "announce_audit_event",
    "announce_batch",
    "enqueue",
    "keys_data",
    "message_body",
    "outbox_messages",
]

TEST_EVENT = "webhook.test"
#: Every event an endpoint can listen to, in the order the docs list them.
EVENT_TYPES = (
    "key.created",
    "key.updated",
    "key.enabled",
    "key.disabled",
    "key.regenerated",
    "key.previous_secret_revoked",
    "key.deleted",
    "key.expiring",
    "key.expired",
    "key.auto_disabled",
    "key.used_from_new_address",
    TEST_EVENT,
)

_FROM_AUDIT = {
    AuditAction.KEY_CREATED: "key.created",
    AuditAction.KEY_UPDATED: "key.updated",
    AuditAction.KEY_ENABLED: "key.enabled",
    AuditAction.KEY_DISABLED: "key.disabled",
    AuditAction.KEY_REGENERATED: "key.regenerated",
    AuditAction.PREVIOUS_SECRET_REVOKED: "key.previous_secret_revoked",
    AuditAction.KEY_DELETED: "key.deleted",
    AuditAction.KEY_AUTO_DISABLED: "key.auto_disabled",
}


def message_body(event_type: str, data: dict[str, Any], at: datetime) -> str:
    """The JSON POSTed for an event (and signed), as stored in the outbox."""
    stamp = at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return orjson.dumps({"type": event_type, "timestamp": stamp, "data": data}).decode()


async def enqueue(
    organization_id: object,
    event_type: str,
    data: dict[str, Any],
    *,
    now: datetime | None = None,
    endpoint: WebhookEndpoint | None = None,
) -> int:
    """Write the event for each enabled endpoint of the organization listening to it (or
    for ``endpoint`` only, enabled or not); returns how many messages were written."""
    now = now or datetime.now(UTC)
    if endpoint is not None:
        targets = [endpoint]
    else:
        candidates = await WebhookEndpoint.filter(organization_id=organization_id, enabled=True)
        targets = [e for e in candidates if not e.events or event_type in e.events]
    if not targets:
        return 0
    organization = await Organization.filter(id=organization_id).values("id", "name")
    body_data = {
        "organization": {"id": str(organization_id), "name": organization[0]["name"]}
        if organization
        else {"id": str(organization_id)},
        **data,
    }
    for message in outbox_messages(targets, event_type, body_data, now):
        await message.save()
    return len(targets)


def outbox_messages(
    targets: list[WebhookEndpoint], event_type: str, data: dict[str, Any], now: datetime
) -> list[Message]:
    """The messages of an event of ``data`` at ``now``, one for each endpoint (not saved)."""
    return _messages(targets, event_type, message_body(event_type, data, now), now)


def _messages(
    targets: list[WebhookEndpoint], event_type: str, body: str, now: datetime
) -> list[Message]:
    """One outbox message of ``body`` for each endpoint, due at once (not saved)."""
    return [
        Message(
            endpoint_id=target.id,
            message_id=new_message_id(),
            event_type=event_type,
            body=body,
            next_attempt_at=now,
            created_at=now,
        )
        for target in targets
    ]


_KEY_COLUMNS = ("key_id", "name", "enabled", "expires_at", "scopes", "allowed_cidrs")


def _key_of(row: dict[str, Any]) -> dict[str, Any]:
    expires = row["expires_at"]
    return {
        "id": row["key_id"],
        "name": row["name"],
        "enabled": row["enabled"],
        "expiresAt": expires.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if expires
        else None,
        "scopes": row["scopes"] or [],
        "allowedCidrs": row["allowed_cidrs"] or [],
    }


async def key_data(key_id: str) -> dict[str, Any]:
    """What a payload says of a key: never its secret hash or previous hash."""
    rows = await ApiKey.filter(key_id=key_id).values(*_KEY_COLUMNS)
    return _key_of(rows[0]) if rows else {"id": key_id}


async def keys_data(key_ids: list[str]) -> dict[str, dict[str, Any]]:
    """:func:`key_data` of each key, in one statement (its ID alone for a key gone)."""
    rows = await ApiKey.filter(key_id__in=key_ids).values(*_KEY_COLUMNS)
    found = {row["key_id"]: _key_of(row) for row in rows}
    return {key_id: found.get(key_id) or {"id": key_id} for key_id in key_ids}


async def announce_audit_event(event: AuditEvent) -> None:
    """Write the webhook messages of an audit event (a key change), in its transaction."""
    event_type = _FROM_AUDIT.get(event.action)
    if event_type is None or event.organization_id is None or event.key_id is None:
        return
    # Cheap when nobody listens: one query, no payload built.
    if not await WebhookEndpoint.filter(
        organization_id=event.organization_id, enabled=True
    ).exists():
        return
    data: dict[str, Any] = {"key": await key_data(event.key_id)}
    if event.actor_email is not None:
        data["actor"] = {"email": event.actor_email}
    if event.detail:
        data["detail"] = event.detail
    await enqueue(event.organization_id, event_type, data, now=event.created_at)


async def announce_batch(
    organization_id: str, action: AuditAction, key_ids: list[str], detail: dict[str, Any]
) -> int:
    """Write the webhook messages of one audit ``action`` done to many keys of an
    organization without an actor (a batch of the inactivity sweep), as
    :func:`announce_audit_event` would for each key's event, in a few statements whatever
    their number; in the caller's transaction. Returns how many messages were written."""
    event_type = _FROM_AUDIT[action]
    endpoints = await WebhookEndpoint.filter(organization_id=organization_id, enabled=True)
    targets = [e for e in endpoints if not e.events or event_type in e.events]
    if not targets or not key_ids:
        return 0
    now = datetime.now(UTC)
    names = await Organization.filter(id=organization_id).values_list("name", flat=True)
    organization = {"id": str(organization_id), "name": names[0]} if names else None
    keys = await keys_data(key_ids)
    messages: list[Message] = []
    for key_id in key_ids:
        data = {
            "organization": organization or {"id": str(organization_id)},
            "key": keys[key_id],
            "detail": detail,
        }
        messages.extend(_messages(targets, event_type, message_body(event_type, data, now), now))
    await Message.bulk_create(messages, batch_size=1000)
    return len(messages)
