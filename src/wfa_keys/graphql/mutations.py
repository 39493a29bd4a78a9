"""The write side of the API: signing in and out, and managing API keys.

Resolvers are thin: they read the arguments, call the service layer (:mod:`wfa_keys.keys`,
:mod:`wfa_keys.signin`), which holds every rule, transaction and audit event, and map its
errors to GraphQL codes. The session cookie is the only thing done here.
"""

from __future__ import annotations

from typing import Any

import strawberry

from wfa_keys.crypto import sha256_hex
from wfa_keys.devices import DEVICE_COOKIE_NAME, set_device_cookie
from wfa_keys.graphql import webhooks
from wfa_keys.graphql.errors import domain_errors
from wfa_keys.graphql.permissions import admin_only
from wfa_keys.graphql.queries import ContextInfo
from wfa_keys.graphql.types import (
    ApiKey,
    ApiKeyWithSecret,
    CreateApiKeyInput,
    DeletedApiKey,
    Organization,
    OrganizationSettingsInput,
    UpdateApiKeyInput,
    User,
)
from wfa_keys.graphql.usage import QuotaInput, RateLimitInput
from wfa_keys.graphql.webhooks import WebhookEndpoint, WebhookEndpointWithSecret, WebhookMessage
from wfa_keys.keys import UNCHANGED, NewSecret
from wfa_keys.sessions import ActiveSession, clear_session_cookie, set_session_cookie

__all__ = ["LOGIN_FAILED_MESSAGE", "Mutation"]

LOGIN_FAILED_MESSAGE = "Wrong email or password."

#: Domain field names as a GraphQL client spells the arguments. An unknown scope on create is
#: ``scopes``, as issue 10's contract names it; everything else inside an input is ``input.*``.
_KEY_FIELDS = {
    "key_id": "id",
    "name": "input.name",
    "lifetime_days": "input.lifetimeDays",
    "scopes": "scopes",
    "allowed_cidrs": "input.allowedCidrs",
    "grace_period_minutes": "gracePeriodMinutes",
    "rate_limit.requests": "input.rateLimit.requests",
    "rate_limit.per_seconds": "input.rateLimit.perSeconds",
    "quota.requests": "input.quota.requests",
    "quota.period": "input.quota.period",
}
_UPDATE_FIELDS = {
    **_KEY_FIELDS,
    "scopes": "input.scopes",
}
_SETTINGS_FIELDS = {"key_inactivity_days": "input.keyInactivityDays"}


def _unless_unset(given: RateLimitInput | QuotaInput | None) -> Any:
    """UNCHANGED when absent, None when null, else the service layer's value."""
    if given is strawberry.UNSET:
        return UNCHANGED
    return None if given is None else given.value()


def _with_secret(new: NewSecret) -> ApiKeyWithSecret:
    return ApiKeyWithSecret(api_key=ApiKey.from_model(new.key), key_secret=new.key_secret)


async def resolve_login(info: ContextInfo, email: str, password: str) -> User:
    context = info.context
    with domain_errors(request_id=context.request_id):
        signed_in = await context.services.sign_in.sign_in(
            email,
            password,
            client_ip=context.client_ip,
            current_session=context.session,
            request_id=context.request_id,
            device_cookie=(
                context.request.cookies.get(DEVICE_COOKIE_NAME)
                if context.request is not None
                else None
            ),
        )
    if context.response is not None:
        set_session_cookie(
            context.response, signed_in.session_id, context.settings, secure=context.secure
        )
        if signed_in.device_cookie is not None:
            set_device_cookie(
                context.response, signed_in.device_cookie, context.settings, secure=context.secure
            )
    context.session = ActiveSession(id_hash=sha256_hex(signed_in.session_id), user=signed_in.user)
    return User.from_model(signed_in.user)


async def resolve_logout(info: ContextInfo) -> bool:
    context = info.context
    if context.response is not None:
        clear_session_cookie(
            context.response, secure=context.secure, root_path=context.settings.root_path
        )
    ended = await context.services.sign_in.sign_out(context.session, client_ip=context.client_ip)
    context.session = None
    return ended


async def resolve_create_api_key(info: ContextInfo, input: CreateApiKeyInput) -> ApiKeyWithSecret:
    context = info.context
    with domain_errors(_KEY_FIELDS, request_id=context.request_id):
        new = await context.services.keys.create_key(
            context.actor,
            name=input.name,
            lifetime_days=input.lifetime_days,
            scopes=input.scopes,
            allowed_cidrs=input.allowed_cidrs,
            rate_limit=input.rate_limit.value() if input.rate_limit is not None else None,
            quota=input.quota.value() if input.quota is not None else None,
        )
    return _with_secret(new)


async def resolve_update_api_key(
    info: ContextInfo, id: strawberry.ID, input: UpdateApiKeyInput
) -> ApiKey:
    context = info.context
    with domain_errors(_UPDATE_FIELDS, request_id=context.request_id):
        key = await context.services.keys.update_key(
            context.actor,
            id,
            name=input.name,
            scopes=input.scopes,
            allowed_cidrs=input.allowed_cidrs,
            rate_limit=_unless_unset(input.rate_limit),
            quota=_unless_unset(input.quota),
        )
    return ApiKey.from_model(key)


async def resolve_set_api_key_enabled(
    info: ContextInfo, id: strawberry.ID, enabled: bool
) -> ApiKey:
    context = info.context
    with domain_errors(_KEY_FIELDS, request_id=context.request_id):
        key = await context.services.keys.set_key_enabled(context.actor, id, enabled)
    return ApiKey.from_model(key)


async def resolve_regenerate_api_key(
    info: ContextInfo, id: strawberry.ID, grace_period_minutes: int = 0
) -> ApiKeyWithSecret:
    context = info.context
    with domain_errors(_KEY_FIELDS, request_id=context.request_id):
        new = await context.services.keys.regenerate_key(
            context.actor, id, grace_period_minutes=grace_period_minutes
        )
    return _with_secret(new)


async def resolve_revoke_previous_secret(info: ContextInfo, id: strawberry.ID) -> ApiKey:
    context = info.context
    with domain_errors(_KEY_FIELDS, request_id=context.request_id):
        key = await context.services.keys.revoke_previous_secret(context.actor, id)
    return ApiKey.from_model(key)


async def resolve_set_organization_settings(
    info: ContextInfo, input: OrganizationSettingsInput
) -> Organization:
    context = info.context
    actor = context.actor
    if input.key_inactivity_days is strawberry.UNSET:
        user = context.user
        if user is None:  # pragma: no cover - admin_only refused the call already
            raise RuntimeError("resolver reached without a signed-in user")
        return Organization.from_model(user.organization)
    with domain_errors(_SETTINGS_FIELDS, request_id=context.request_id):
        organization = await context.services.keys.set_key_inactivity_days(
            actor, input.key_inactivity_days
        )
    return Organization.from_model(organization)


async def resolve_delete_api_key(info: ContextInfo, id: strawberry.ID) -> DeletedApiKey:
    context = info.context
    with domain_errors(_KEY_FIELDS, request_id=context.request_id):
        key_id = await context.services.keys.delete_key(context.actor, id)
    return DeletedApiKey(id=strawberry.ID(key_id))


@strawberry.type
class Mutation:
    """Signing in and out; creating, changing, disabling, enabling, regenerating, deleting
    keys; the organization's key settings."""

    login: User = strawberry.mutation(
        resolver=resolve_login,
        description=(
            "Sign in; sets the session cookie. Wrong email and wrong password get the same "
            "UNAUTHENTICATED error; too many failures, RATE_LIMITED with retryAfter seconds."
        ),
    )
    logout: bool = strawberry.mutation(
        resolver=resolve_logout,
        description=(
            "Sign out: ends the session on the server and clears the cookie. "
            "False when there was no session to end."
        ),
    )
    create_api_key: ApiKeyWithSecret = strawberry.mutation(
        resolver=resolve_create_api_key,
        description=(
            "Create an enabled key owned by the caller. The Key Secret is in this response "
            "only: it is never stored or shown again."
        ),
        extensions=[admin_only()],
    )
    set_api_key_enabled: ApiKey = strawberry.mutation(
        resolver=resolve_set_api_key_enabled,
        description=(
            "Disable or enable a key; a disabled key is refused from the next call on. "
            "Setting the state a key already has changes nothing and records no audit event."
        ),
        extensions=[admin_only()],
    )
    regenerate_api_key: ApiKeyWithSecret = strawberry.mutation(
        resolver=resolve_regenerate_api_key,
        description=(
            "Replace the key's secret; the Key ID, name, enabled state and expiry stay. The "
            "new secret is shown only here. With gracePeriodMinutes 0 (the default) the old "
            "secret and its tokens stop working when this returns; with 1 to 10080 they keep "
            "working until previousSecretExpiresAt (only the secret just replaced: an older "
            "one stops now)."
        ),
        extensions=[admin_only()],
    )
    revoke_previous_secret: ApiKey = strawberry.mutation(
        resolver=resolve_revoke_previous_secret,
        description=(
            "End the grace period of the last regeneration now: the old secret and the tokens "
            "issued for it are refused from the next call on. A key without a valid old "
            "secret is returned unchanged (no audit event)."
        ),
        extensions=[admin_only()],
    )
    update_api_key: ApiKey = strawberry.mutation(
        resolver=resolve_update_api_key,
        description=(
            "Change a key's name, scopes or allowed networks (absent or null: unchanged), "
            "rate limit or quota (absent: unchanged; null: removed); honoured from the next "
            "call on. An update that changes nothing records no "
            "audit event."
        ),
        extensions=[admin_only()],
    )
    set_organization_settings: Organization = strawberry.mutation(
        resolver=resolve_set_organization_settings,
        description="Set the organization's key settings (absent fields stay as they are).",
        extensions=[admin_only()],
    )
    delete_api_key: DeletedApiKey = strawberry.mutation(
        resolver=resolve_delete_api_key,
        description="Delete a key permanently; calls with it are refused from then on.",
        extensions=[admin_only()],
    )
    # -- Webhooks (issue 23) --------------------------------------------------------------
    create_webhook_endpoint: WebhookEndpointWithSecret = strawberry.mutation(
        resolver=webhooks.resolve_create_webhook_endpoint,
        description=(
            "Add a webhook endpoint (at most 10 per organization). The URL must be https:// "
            "and resolve to public addresses only. The signing secret is in this response only."
        ),
        extensions=[admin_only()],
    )
    update_webhook_endpoint: WebhookEndpoint = strawberry.mutation(
        resolver=webhooks.resolve_update_webhook_endpoint,
        description="Change an endpoint's URL, events or description (absent: unchanged).",
        extensions=[admin_only()],
    )
    set_webhook_endpoint_enabled: WebhookEndpoint = strawberry.mutation(
        resolver=webhooks.resolve_set_webhook_endpoint_enabled,
        description=(
            "Disable or enable an endpoint. Events keep queueing while it is disabled and are "
            "delivered in order once it is enabled again."
        ),
        extensions=[admin_only()],
    )
    rotate_webhook_secret: WebhookEndpointWithSecret = strawberry.mutation(
        resolver=webhooks.resolve_rotate_webhook_secret,
        description="Replace the signing secret; shown in this response only.",
        extensions=[admin_only()],
    )
    delete_webhook_endpoint: strawberry.ID = strawberry.mutation(
        resolver=webhooks.resolve_delete_webhook_endpoint,
        description="Delete an endpoint with its queued events and delivery log; its ID.",
        extensions=[admin_only()],
    )
    send_test_webhook: WebhookMessage = strawberry.mutation(
        resolver=webhooks.resolve_send_test_webhook,
        description="Queue a webhook.test event for this endpoint only.",
        extensions=[admin_only()],
    )
