"""Webhook endpoints in GraphQL: the types, and the thin resolvers over
:class:`wfa_keys.webhooks.endpoints.WebhookManager` (issue 23; names fixed by the issue)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import strawberry
from strawberry.types import Info

from wfa_keys import models
from wfa_keys.graphql.context import Context
from wfa_keys.graphql.errors import domain_errors
from wfa_keys.graphql.pagination import Count, Page, newest_first
from wfa_keys.graphql.types import PageInfo
from wfa_keys.limits import DEFAULT_PAGE_SIZE
from wfa_keys.webhooks.endpoints import NewEndpointSecret
from wfa_keys.webhooks.events import EVENT_TYPES

ContextInfo = Info[Context, Any]

_FIELDS = {
    "url": "input.url",
    "events": "input.events",
    "description": "input.description",
}


@strawberry.type(description="Where the organization's key events are POSTed, signed.")
class WebhookEndpoint:
    """A webhook endpoint as the API shows it: never its signing secret."""

    id: strawberry.ID
    url: str
    events: list[str] = strawberry.field(
        description="The event types sent to it; empty: every event."
    )
    enabled: bool
    description: str
    disabled_reason: str | None = strawberry.field(
        description="Why the service disabled it (deliveries failing for days); null otherwise."
    )
    created_at: datetime

    @classmethod
    def from_model(cls, endpoint: models.WebhookEndpoint) -> WebhookEndpoint:
        """The API view of an endpoint."""
        return cls(
            id=strawberry.ID(str(endpoint.id)),
            url=endpoint.url,
            events=list(endpoint.events or ()),
            enabled=endpoint.enabled,
            description=endpoint.description,
            disabled_reason=endpoint.disabled_reason,
            created_at=endpoint.created_at,
        )


@strawberry.type(description="An endpoint and its signing secret, shown this once.")
class WebhookEndpointWithSecret:
    """An endpoint and its ``whsec_`` signing secret; the secret cannot be shown again."""

    endpoint: WebhookEndpoint
    secret: str = strawberry.field(
        description="The signing secret (whsec_...), in the Standard Webhooks format; shown once."
    )

    @classmethod
    def of(cls, new: NewEndpointSecret) -> WebhookEndpointWithSecret:
        """The API view of a new secret."""
        return cls(endpoint=WebhookEndpoint.from_model(new.endpoint), secret=new.secret)


@strawberry.input(description="A new webhook endpoint.")
class WebhookEndpointInput:
    """What an admin chooses for a new endpoint."""

    url: str = strawberry.field(
        description="https:// URL of a public address (checked again before each delivery)."
    )
    events: list[str] | None = strawberry.field(
        default=None, description="Event types to send (see webhookEventTypes); null or []: all."
    )
    description: str | None = strawberry.field(default=None, description="Up to 200 characters.")


@strawberry.input(description="The fields of an endpoint to change; absent or null: unchanged.")
class UpdateWebhookEndpointInput:
    """What an admin may change on an endpoint."""

    url: str | None = None
    events: list[str] | None = None
    description: str | None = None


@strawberry.type(description="An event queued for one endpoint.")
class WebhookMessage:
    """A queued event: its ``webhook-id`` and type."""

    id: strawberry.ID = strawberry.field(description="The webhook-id header of its deliveries.")
    event_type: str
    status: str = strawberry.field(description="pending, delivered or failed.")
    created_at: datetime


@strawberry.type(description="One attempt to deliver an event to an endpoint.")
class WebhookDelivery:
    """An attempt: its outcome, the receiver's status code, how long, the next retry."""

    id: strawberry.ID
    event_type: str
    status: str = strawberry.field(description="delivered, retrying or failed.")
    response_code: int | None
    duration_ms: int
    error: str | None = strawberry.field(description="Why it failed, in a few words.")
    next_retry_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> WebhookDelivery:
        """The API view of a row of :data:`DELIVERY_FIELDS`."""
        return cls(
            id=strawberry.ID(str(row["id"])),
            event_type=row["event_type"],
            status=row["status"],
            response_code=row["response_code"],
            duration_ms=row["duration_ms"],
            error=row["error"],
            next_retry_at=row["next_retry_at"],
            created_at=row["created_at"],
        )


DELIVERY_FIELDS = (
    "id",
    "event_type",
    "status",
    "response_code",
    "duration_ms",
    "error",
    "next_retry_at",
    "created_at",
)


async def _total(root: WebhookDeliveryConnection) -> int:
    return await root.count()


@strawberry.type(description="A page of delivery attempts, newest first.")
class WebhookDeliveryConnection:
    """A page of attempts; the total is counted only when selected."""

    nodes: list[WebhookDelivery]
    page_info: PageInfo
    count: strawberry.Private[Count]
    total_count: int = strawberry.field(resolver=_total, description="How many attempts.")

    @classmethod
    def from_page(cls, page: Page) -> WebhookDeliveryConnection:
        """A page of rows of :data:`DELIVERY_FIELDS`."""
        nodes = [WebhookDelivery.from_row(row) for row in page.rows]
        return cls(nodes=nodes, page_info=PageInfo.of(page), count=page.count)


# -- resolvers --------------------------------------------------------------------------


async def resolve_webhook_endpoints(info: ContextInfo) -> list[WebhookEndpoint]:
    context = info.context
    endpoints = await context.services.webhooks.endpoints(context.actor)
    return [WebhookEndpoint.from_model(e) for e in endpoints]


def resolve_webhook_event_types() -> list[str]:
    return list(EVENT_TYPES)


async def resolve_webhook_deliveries(
    info: ContextInfo,
    endpoint_id: strawberry.ID,
    first: int | None = DEFAULT_PAGE_SIZE,
    after: str | None = None,
) -> WebhookDeliveryConnection:
    context = info.context
    with domain_errors({"endpoint_id": "endpointId"}, request_id=context.request_id):
        query = await context.services.webhooks.deliveries(context.actor, endpoint_id)
    page = await newest_first(
        query,
        fields=DELIVERY_FIELDS,
        first=DEFAULT_PAGE_SIZE if first is None else first,
        after=after,
    )
    return WebhookDeliveryConnection.from_page(page)


async def resolve_create_webhook_endpoint(
    info: ContextInfo, input: WebhookEndpointInput
) -> WebhookEndpointWithSecret:
    context = info.context
    with domain_errors(_FIELDS, request_id=context.request_id):
        new = await context.services.webhooks.create_endpoint(
            context.actor, url=input.url, events=input.events, description=input.description
        )
    return WebhookEndpointWithSecret.of(new)


async def resolve_update_webhook_endpoint(
    info: ContextInfo, id: strawberry.ID, input: UpdateWebhookEndpointInput
) -> WebhookEndpoint:
    context = info.context
    with domain_errors(_FIELDS, request_id=context.request_id):
        endpoint = await context.services.webhooks.update_endpoint(
            context.actor, id, url=input.url, events=input.events, description=input.description
        )
    return WebhookEndpoint.from_model(endpoint)


async def resolve_set_webhook_endpoint_enabled(
    info: ContextInfo, id: strawberry.ID, enabled: bool
) -> WebhookEndpoint:
    context = info.context
    with domain_errors(request_id=context.request_id):
        endpoint = await context.services.webhooks.set_enabled(context.actor, id, enabled)
    return WebhookEndpoint.from_model(endpoint)


async def resolve_rotate_webhook_secret(
    info: ContextInfo, id: strawberry.ID
) -> WebhookEndpointWithSecret:
    context = info.context
    with domain_errors(request_id=context.request_id):
        new = await context.services.webhooks.rotate_secret(context.actor, id)
    return WebhookEndpointWithSecret.of(new)


async def resolve_delete_webhook_endpoint(info: ContextInfo, id: strawberry.ID) -> strawberry.ID:
    context = info.context
    with domain_errors(request_id=context.request_id):
        deleted = await context.services.webhooks.delete_endpoint(context.actor, id)
    return strawberry.ID(deleted)


async def resolve_send_test_webhook(info: ContextInfo, id: strawberry.ID) -> WebhookMessage:
    context = info.context
    with domain_errors(request_id=context.request_id):
        message = await context.services.webhooks.send_test(context.actor, id)
    return WebhookMessage(
        id=strawberry.ID(message.message_id),
        event_type=message.event_type,
        status=message.status,
        created_at=message.created_at,
    )
