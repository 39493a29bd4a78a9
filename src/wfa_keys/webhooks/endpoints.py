"""The rules of webhook endpoints, for any caller (the GraphQL resolvers are thin over these).

An organization has at most :data:`MAX_ENDPOINTS` endpoints. Each change is one transaction
holding the change and its audit event. URLs go through the SSRF guard before anything is
written. The signing secret is returned by :meth:`WebhookManager.create_endpoint` and
:meth:`WebhookManager.rotate_secret` only: nothing else ever shows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from wfa_keys.audit import record_event
from wfa_keys.errors import InvalidInput, NotFound
from wfa_keys.keys import Actor
from wfa_keys.models import AuditAction, Organization, WebhookDelivery, WebhookEndpoint
from wfa_keys.models import WebhookMessage as Message
from wfa_keys.webhooks.events import EVENT_TYPES, TEST_EVENT, enqueue
from wfa_keys.webhooks.guard import AddressGuard, RefusedUrl
from wfa_keys.webhooks.signing import new_signing_secret

__all__ = ["MAX_ENDPOINTS", "EndpointNotFound", "NewEndpointSecret", "WebhookManager"]

MAX_ENDPOINTS = 10
MAX_DESCRIPTION = 200


class EndpointNotFound(NotFound):
    """No such endpoint in the caller's organization (another organization's included)."""

    default_message = "There is no webhook endpoint with this ID in your organization."


@dataclass(frozen=True, slots=True)
class NewEndpointSecret:
    """An endpoint with its new signing secret: the only time the secret is shown."""

    endpoint: WebhookEndpoint
    secret: str

    def __repr__(self) -> str:
        return f"NewEndpointSecret(endpoint={self.endpoint.id!s}, secret='***')"


def _events(events: Sequence[str] | None) -> list[str]:
    """The event types listened to; empty or None means every event."""
    chosen = list(dict.fromkeys(events or ()))
    unknown = [e for e in chosen if e not in EVENT_TYPES]
    if unknown:
        raise InvalidInput("events", f"Unknown event type {unknown[0][:64]!r}.")
    return chosen


def _description(text: str | None) -> str:
    text = (text or "").strip()
    if len(text) > MAX_DESCRIPTION:
        raise InvalidInput("description", f"The description is longer than {MAX_DESCRIPTION}.")
    return text


def _endpoint_id(value: object) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise EndpointNotFound() from None


class WebhookManager:
    """Creates, changes and lists an organization's webhook endpoints."""

    def __init__(self, guard: AddressGuard) -> None:
        self.guard = guard

    async def _url(self, url: str) -> str:
        try:
            await self.guard.check(url)
        except RefusedUrl as exc:
            raise InvalidInput("url", str(exc)) from None
        return url.strip()

    def endpoints(self, actor: Actor) -> QuerySet[WebhookEndpoint]:
        """The organization's endpoints, oldest first."""
        return WebhookEndpoint.filter(organization_id=actor.organization_id).order_by(
            "created_at", "id"
        )

    async def get_endpoint(self, actor: Actor, endpoint_id: object) -> WebhookEndpoint:
        """The organization's endpoint with this ID; else :class:`EndpointNotFound`."""
        endpoint = await WebhookEndpoint.filter(
            organization_id=actor.organization_id, id=_endpoint_id(endpoint_id)
        ).first()
        if endpoint is None:
            raise EndpointNotFound()
        return endpoint

    async def create_endpoint(
        self,
        actor: Actor,
        *,
        url: str,
        events: Sequence[str] | None = None,
        description: str | None = None,
    ) -> NewEndpointSecret:
        """Add an enabled endpoint; its secret is in the result only."""
        chosen, text = _events(events), _description(description)
        checked = await self._url(url)
        secret = new_signing_secret()
        organization_id = actor.organization_id
        async with in_transaction():
            # Serializes the creators of one organization, so the count cannot go stale.
            await Organization.filter(id=organization_id).select_for_update().first()
            if await WebhookEndpoint.filter(organization_id=organization_id).count() >= (
                MAX_ENDPOINTS
            ):
                raise InvalidInput(
                    "url", f"An organization has at most {MAX_ENDPOINTS} webhook endpoints."
                )
            endpoint = await WebhookEndpoint.create(
                organization_id=organization_id,
                url=checked,
                events=chosen,
                description=text,
                signing_secret=secret,
            )
            await self._audit(actor, AuditAction.WEBHOOK_CREATED, endpoint)
        return NewEndpointSecret(endpoint, secret)

    async def update_endpoint(
        self,
        actor: Actor,
        endpoint_id: object,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
    ) -> WebhookEndpoint:
        """Change an endpoint's URL, events or description; None leaves a field as it is."""
        wanted: dict[str, Any] = {}
        if events is not None:
            wanted["events"] = _events(events)
        if description is not None:
            wanted["description"] = _description(description)
        if url is not None:
            wanted["url"] = await self._url(url)
        async with in_transaction():
            endpoint = await self._locked(actor, endpoint_id)
            changed = [f for f, v in wanted.items() if getattr(endpoint, f) != v]
            if changed:
                for field in changed:
                    setattr(endpoint, field, wanted[field])
                await endpoint.save(update_fields=changed)
                await self._audit(actor, AuditAction.WEBHOOK_UPDATED, endpoint, changed=changed)
        return endpoint

    async def set_enabled(
        self, actor: Actor, endpoint_id: object, enabled: bool
    ) -> WebhookEndpoint:
        """Enable or disable an endpoint. Enabling clears the reason the service disabled it
        for; messages waiting meanwhile are delivered, in order."""
        async with in_transaction():
            endpoint = await self._locked(actor, endpoint_id)
            if endpoint.enabled != enabled:
                endpoint.enabled = enabled
                endpoint.disabled_reason = None
                endpoint.failing_since = None
                await endpoint.save(update_fields=["enabled", "disabled_reason", "failing_since"])
                action = AuditAction.WEBHOOK_ENABLED if enabled else AuditAction.WEBHOOK_DISABLED
                await self._audit(actor, action, endpoint)
        return endpoint

    async def rotate_secret(self, actor: Actor, endpoint_id: object) -> NewEndpointSecret:
        """Replace the signing secret; deliveries from now on are signed with the new one."""
        secret = new_signing_secret()
        async with in_transaction():
            endpoint = await self._locked(actor, endpoint_id)
            endpoint.signing_secret = secret
            await endpoint.save(update_fields=["signing_secret"])
            await self._audit(actor, AuditAction.WEBHOOK_SECRET_ROTATED, endpoint)
        return NewEndpointSecret(endpoint, secret)

    async def delete_endpoint(self, actor: Actor, endpoint_id: object) -> str:
        """Delete an endpoint with its undelivered messages and its delivery log."""
        async with in_transaction():
            endpoint = await self._locked(actor, endpoint_id)
            await self._audit(actor, AuditAction.WEBHOOK_DELETED, endpoint)
            await endpoint.delete()
        return str(endpoint.id)

    async def send_test(self, actor: Actor, endpoint_id: object) -> Message:
        """Queue a ``webhook.test`` event for this endpoint only."""
        async with in_transaction():
            endpoint = await self._locked(actor, endpoint_id)
            await self._audit(actor, AuditAction.WEBHOOK_TESTED, endpoint)
            now = datetime.now(UTC)
            await enqueue(
                endpoint.organization_id,
                TEST_EVENT,
                {"endpoint": {"id": str(endpoint.id)}},
                now=now,
                endpoint=endpoint,
            )
            message = await Message.filter(endpoint_id=endpoint.id).order_by("-id").first()
        assert message is not None  # written just above, in this transaction
        return message

    async def deliveries(self, actor: Actor, endpoint_id: object) -> QuerySet[WebhookDelivery]:
        """The endpoint's delivery attempts (page them newest first)."""
        endpoint = await self.get_endpoint(actor, endpoint_id)
        return WebhookDelivery.filter(endpoint_id=endpoint.id)

    async def _locked(self, actor: Actor, endpoint_id: object) -> WebhookEndpoint:
        endpoint = (
            await WebhookEndpoint.filter(
                organization_id=actor.organization_id, id=_endpoint_id(endpoint_id)
            )
            .select_for_update()
            .first()
        )
        if endpoint is None:
            raise EndpointNotFound()
        return endpoint

    @staticmethod
    async def _audit(
        actor: Actor,
        action: AuditAction,
        endpoint: WebhookEndpoint,
        changed: list[str] | None = None,
    ) -> None:
        # The host only: a URL's path or query may hold the receiver's own token.
        host = urlsplit(endpoint.url).hostname or ""
        detail: dict[str, Any] = {"endpointId": str(endpoint.id), "host": host}
        if changed:
            detail["changed"] = changed
        await record_event(
            action,
            organization_id=actor.organization_id,
            actor=actor.user,
            client_ip=actor.client_ip,
            detail=detail,
        )
