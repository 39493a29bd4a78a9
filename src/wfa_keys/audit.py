"""Writing audit events. Call :func:`record_event` inside the transaction of the change,
so that the event exists if and only if the change does. Events never hold a secret or a
hash: only the action, who, which Key ID, when and from which address.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from wfa_keys.models import AuditAction, AuditEvent, User

__all__ = ["record_event"]


async def record_event(
    action: AuditAction,
    *,
    organization_id: UUID | str | None,
    actor: User | None,
    client_ip: str | None,
    key_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Store one audit event on the current connection (the caller's transaction)."""
    return await AuditEvent.create(
        action=action,
        organization_id=organization_id,
        actor_id=actor.id if actor is not None else None,
        actor_email=actor.email if actor is not None else None,
        key_id=key_id,
        client_ip=client_ip[:64] if client_ip else None,
        detail=detail,
    )
