"""The read side of the API: the caller and the organization's API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.types import Info

from wfa_keys import models
from wfa_keys.graphql import inputs, webhooks
from wfa_keys.graphql.context import Context
from wfa_keys.graphql.errors import domain_errors
from wfa_keys.graphql.pagination import newest_first
from wfa_keys.graphql.permissions import admin_only
from wfa_keys.graphql.types import (
    API_KEY_FIELDS,
    AUDIT_EVENT_FIELDS,
    ApiKey,
    ApiKeyConnection,
    ApiKeyStatus,
    ApiScope,
    AuditEventConnection,
    KeyUsage,
    OrganizationUsage,
    User,
)
from wfa_keys.graphql.usage import UsageBucket, UsageGranularity, usage_starts
from wfa_keys.graphql.webhooks import WebhookDeliveryConnection, WebhookEndpoint
from wfa_keys.keys import KeyStatus
from wfa_keys.limits import DEFAULT_PAGE_SIZE
from wfa_keys.scopes import KNOWN_SCOPES
from wfa_keys.usage import organization_usage

#: Domain field names as a client of ``apiKeys`` spells the arguments.
_LIST_FIELDS = {"expiring_within_days": "expiringWithinDays"}
_KEY_FIELDS = {"key_id": "id"}

ContextInfo = Info[Context, Any]


def signed_in_user(info: ContextInfo) -> models.User:
    """The caller; only called behind :func:`admin_only`, which has checked there is one."""
    user = info.context.user
    if user is None:  # pragma: no cover - admin_only refused the call already
        raise RuntimeError("resolver reached without a signed-in user")
    return user


def resolve_me(info: ContextInfo) -> User | None:
    user = info.context.user
    return User.from_model(user) if user is not None else None


async def resolve_api_keys(
    info: ContextInfo,
    first: int | None = DEFAULT_PAGE_SIZE,
    after: str | None = None,
    search: str | None = None,
    status: ApiKeyStatus | None = None,
    expiring_within_days: int | None = None,
) -> ApiKeyConnection:
    context = info.context
    with domain_errors(_LIST_FIELDS, request_id=context.request_id):
        matching = context.services.keys.key_filter(
            context.actor,
            search=search,
            status=KeyStatus(status.value) if status is not None else None,
            expiring_within_days=expiring_within_days,
        )
    page = await newest_first(
        matching,
        fields=API_KEY_FIELDS,
        first=DEFAULT_PAGE_SIZE if first is None else first,
        after=after,
    )
    return ApiKeyConnection.from_page(page)


async def resolve_api_key(info: ContextInfo, id: strawberry.ID) -> ApiKey | None:
    context = info.context
    with domain_errors(_KEY_FIELDS, request_id=context.request_id):
        key = await context.services.keys.get_key(context.actor, id)
    return ApiKey.from_model(key) if key is not None else None


def resolve_api_scopes() -> list[ApiScope]:
    return [
        ApiScope(name=s.name, description=s.description, granted_by_default=s.default)
        for s in KNOWN_SCOPES
    ]


async def resolve_audit_events(
    info: ContextInfo,
    first: int | None = DEFAULT_PAGE_SIZE,
    after: str | None = None,
    key_id: strawberry.ID | None = None,
    action: models.AuditAction | None = None,
) -> AuditEventConnection:
    user = signed_in_user(info)
    query = models.AuditEvent.filter(organization_id=user.organization_id)
    if key_id is not None:
        query = query.filter(key_id=inputs.key_id(key_id, field="keyId"))
    if action is not None:
        query = query.filter(action=action)
    page = await newest_first(
        query,
        fields=AUDIT_EVENT_FIELDS,
        first=DEFAULT_PAGE_SIZE if first is None else first,
        after=after,
    )
    return AuditEventConnection.from_page(page)


async def resolve_organization_usage(
    info: ContextInfo,
    since: datetime,
    until: datetime | None = None,
    granularity: UsageGranularity | None = UsageGranularity.DAY,
    top: int | None = 10,
) -> OrganizationUsage:
    context = info.context
    granularity = UsageGranularity.DAY if granularity is None else granularity
    top = 10 if top is None else top
    starts, width = usage_starts(context, since, until, granularity)
    organization_id = signed_in_user(info).organization_id
    with domain_errors({"top": "top"}, request_id=context.request_id):
        buckets, totals = await organization_usage(organization_id, starts, width, top)
    keys = {
        key.key_id: key
        for key in await models.ApiKey.filter(
            organization_id=organization_id, key_id__in=[t.key_id for t in totals]
        ).select_related("owner__organization")
    }
    return OrganizationUsage(
        buckets=[UsageBucket.of(bucket) for bucket in buckets],
        top_keys=[
            KeyUsage(
                api_key=ApiKey.from_model(keys[t.key_id]) if t.key_id in keys else None,
                key_id=t.key_id,
                total=t.total,
                success=t.success,
            )
            for t in totals
        ],
    )


@strawberry.type
class Query:
    """Reading: who am I, and my organization's keys."""

    me: User | None = strawberry.field(
        resolver=resolve_me, description="The signed-in user; null when not signed in."
    )
    api_keys: ApiKeyConnection = strawberry.field(
        resolver=resolve_api_keys,
        description=(
            "The organization's API keys, newest first. `first` is 1 to 100 (null: 50); "
            "`search` matches the name or the Key ID, ignoring case; `status` keeps the keys "
            "of that status; `expiringWithinDays` (1 to 3650) keeps the keys that expire "
            "between now and that many days from now. totalCount counts the filtered keys."
        ),
        extensions=[admin_only()],
    )
    api_scopes: list[ApiScope] = strawberry.field(
        resolver=resolve_api_scopes,
        description="The scopes an API key may grant, for createApiKey and updateApiKey.",
        extensions=[admin_only()],
    )
    api_key: ApiKey | None = strawberry.field(
        resolver=resolve_api_key,
        description="The key with this Key ID; null when the organization has no such key.",
        extensions=[admin_only()],
    )
    audit_events: AuditEventConnection = strawberry.field(
        resolver=resolve_audit_events,
        description=(
            "The organization's audit log, newest first; `keyId` keeps the events of one "
            "key, `action` the events of one kind. `first` is 1 to 100 (null: 50)."
        ),
        extensions=[admin_only()],
    )
    # -- Webhooks (issue 23) --------------------------------------------------------------
    webhook_endpoints: list[WebhookEndpoint] = strawberry.field(
        resolver=webhooks.resolve_webhook_endpoints,
        description="The organization's webhook endpoints (at most 10), oldest first.",
        extensions=[admin_only()],
    )
    webhook_event_types: list[str] = strawberry.field(
        resolver=webhooks.resolve_webhook_event_types,
        description="The event types a webhook endpoint can listen to.",
        extensions=[admin_only()],
    )
    webhook_deliveries: WebhookDeliveryConnection = strawberry.field(
        resolver=webhooks.resolve_webhook_deliveries,
        description=(
            "The delivery attempts of one endpoint, newest first: status, response code, "
            "duration and next retry. `first` is 1 to 100 (null: 50)."
        ),
        extensions=[admin_only()],
    )
    organization_usage: OrganizationUsage = strawberry.field(
        resolver=resolve_organization_usage,
        description=(
            "The organization's calls per bucket by outcome (empty buckets included), from "
            "the bucket holding `since` to the one holding `until` (default: now), and its "
            "`top` (1 to 100) keys by calls over that range, deleted keys included. At most "
            "31 days of HOUR or 400 of DAY (BAD_USER_INPUT beyond)."
        ),
        extensions=[admin_only()],
    )
