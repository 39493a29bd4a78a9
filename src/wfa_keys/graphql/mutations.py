"""The write side of the API: signing in and out, and managing API keys.

Every change runs in one transaction with its audit event, so a failure leaves neither.
Hashing (argon2, tens of milliseconds) runs in a worker thread, before the transaction,
so that neither the event loop nor a row lock waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import strawberry
from strawberry.types import Info
from tortoise.transactions import in_transaction

from wfa_keys import models
from wfa_keys.audit import record_event
from wfa_keys.changes import publish_key_change
from wfa_keys.crypto import generate_key_id, new_key_secret, sha256_hex
from wfa_keys.graphql import inputs
from wfa_keys.graphql.context import Context
from wfa_keys.graphql.errors import NotFound, RateLimited, Unauthenticated
from wfa_keys.graphql.permissions import admin_only
from wfa_keys.graphql.queries import ContextInfo, signed_in_user
from wfa_keys.graphql.types import ApiKey, ApiKeyWithSecret, CreateApiKeyInput, DeletedApiKey, User
from wfa_keys.models import AuditAction
from wfa_keys.sessions import (
    ActiveSession,
    clear_session_cookie,
    end_session,
    set_session_cookie,
    start_session,
)
from wfa_keys.users import normalize_email

logger = logging.getLogger("wfa_keys.graphql")

LOGIN_FAILED_MESSAGE = "Wrong email or password."


async def _locked_key(user: models.User, key_id: str) -> models.ApiKey:
    """The caller's organization's key, locked until the transaction ends; else NOT_FOUND."""
    key = (
        await models.ApiKey.filter(organization_id=user.organization_id, key_id=key_id)
        .select_for_update()
        .first()
    )
    if key is None:
        raise NotFound()
    return key


async def _key_changed(context: Context, key_id: str) -> None:
    """Tell the API-key middleware to forget its cached record; the change is committed."""
    callback = context.services.on_key_changed
    if callback is None:
        return
    try:
        await callback(key_id)
    except Exception:
        # The change is committed and must be reported as done; the cache entry expires.
        logger.exception(
            "could not drop the cached record of key %s (request %s)", key_id, context.request_id
        )


async def _as_api_key(key: models.ApiKey) -> ApiKey:
    await key.fetch_related("owner__organization")
    return ApiKey.from_model(key)


async def resolve_login(info: ContextInfo, email: str, password: str) -> User:
    context = info.context
    services = context.services
    throttle = services.login_throttle
    address = normalize_email(email)
    lookup = inputs.login_email(address)
    user = (
        None
        if lookup is None
        else await models.User.filter(email=lookup).select_related("organization").first()
    )
    retry_after = throttle.retry_after(address, context.client_ip)
    if retry_after is not None:
        # Refused without checking the password: the limit also caps argon2 work.
        async with in_transaction():
            await record_event(
                AuditAction.LOGIN_THROTTLED,
                organization_id=user.organization_id if user is not None else None,
                actor=user,
                client_ip=context.client_ip,
            )
        raise RateLimited(retry_after)
    throttle.start_attempt(address, context.client_ip)
    # An unknown email is checked against a dummy hash so that it takes as long.
    stored_hash = user.password_hash if user is not None else services.hasher.dummy_hash
    matches = await asyncio.to_thread(services.hasher.verify, stored_hash, password)
    if user is None or not matches or not user.is_active:
        throttle.record_failure(context.client_ip)
        async with in_transaction():
            await record_event(
                AuditAction.LOGIN_FAILED,
                organization_id=user.organization_id if user is not None else None,
                actor=user,
                client_ip=context.client_ip,
            )
        raise Unauthenticated(LOGIN_FAILED_MESSAGE)
    throttle.record_success(address, context.client_ip)
    new_hash = None
    if services.hasher.needs_rehash(user.password_hash):
        new_hash = await asyncio.to_thread(services.hasher.hash, password)
    async with in_transaction():
        if new_hash is not None:
            await models.User.filter(id=user.id).update(password_hash=new_hash)
        if context.session is not None:
            await end_session(context.session.id_hash)
        # Always a new ID: one planted before sign-in is never promoted (fixation).
        session_id = await start_session(user, services.settings)
        await record_event(
            AuditAction.LOGIN_SUCCEEDED,
            organization_id=user.organization_id,
            actor=user,
            client_ip=context.client_ip,
        )
    if context.response is not None:
        set_session_cookie(context.response, session_id, services.settings, secure=context.secure)
    context.session = ActiveSession(id_hash=sha256_hex(session_id), user=user)
    return User.from_model(user)


async def resolve_logout(info: ContextInfo) -> bool:
    context = info.context
    if context.response is not None:
        clear_session_cookie(context.response, secure=context.secure)
    session = context.session
    if session is None:
        return False
    async with in_transaction():
        ended = await end_session(session.id_hash)
        if ended:
            await record_event(
                AuditAction.LOGOUT,
                organization_id=session.user.organization_id,
                actor=session.user,
                client_ip=context.client_ip,
            )
    context.session = None
    return ended


async def resolve_create_api_key(
    info: Info[Context, Any],
    input: CreateApiKeyInput,
) -> ApiKeyWithSecret:
    user = signed_in_user(info)
    name = inputs.key_name(input.name)
    days = inputs.lifetime_days(input.lifetime_days)
    secret = await asyncio.to_thread(new_key_secret, info.context.services.hasher)
    now = datetime.now(UTC)
    async with in_transaction():
        key = await models.ApiKey.create(
            key_id=generate_key_id(),
            name=name,
            secret_hash=secret.secret_hash,
            enabled=True,
            created_at=now,
            expires_at=now + timedelta(days=days) if days is not None else None,
            owner_id=user.id,
            organization_id=user.organization_id,
        )
        await record_event(
            AuditAction.KEY_CREATED,
            organization_id=user.organization_id,
            actor=user,
            client_ip=info.context.client_ip,
            key_id=key.key_id,
        )
    key.owner = user
    return ApiKeyWithSecret(api_key=ApiKey.from_model(key), key_secret=secret.secret)


async def resolve_set_api_key_enabled(
    info: ContextInfo,
    id: strawberry.ID,
    enabled: bool,
) -> ApiKey:
    user = signed_in_user(info)
    key_id = inputs.key_id(id)
    async with in_transaction():
        key = await _locked_key(user, key_id)
        if key.enabled != enabled:
            key.enabled = enabled
            await key.save(update_fields=["enabled"])
            await record_event(
                AuditAction.KEY_ENABLED if enabled else AuditAction.KEY_DISABLED,
                organization_id=user.organization_id,
                actor=user,
                client_ip=info.context.client_ip,
                key_id=key_id,
            )
            await publish_key_change(key_id)
    await _key_changed(info.context, key_id)
    return await _as_api_key(key)


async def resolve_regenerate_api_key(
    info: ContextInfo,
    id: strawberry.ID,
) -> ApiKeyWithSecret:
    user = signed_in_user(info)
    key_id = inputs.key_id(id)
    secret = await asyncio.to_thread(new_key_secret, info.context.services.hasher)
    async with in_transaction():
        key = await _locked_key(user, key_id)
        key.secret_hash = secret.secret_hash
        key.secret_regenerated_at = datetime.now(UTC)
        await key.save(update_fields=["secret_hash", "secret_regenerated_at"])
        await record_event(
            AuditAction.KEY_REGENERATED,
            organization_id=user.organization_id,
            actor=user,
            client_ip=info.context.client_ip,
            key_id=key_id,
        )
        await publish_key_change(key_id)
    await _key_changed(info.context, key_id)
    return ApiKeyWithSecret(api_key=await _as_api_key(key), key_secret=secret.secret)


async def resolve_delete_api_key(
    info: ContextInfo,
    id: strawberry.ID,
) -> DeletedApiKey:
    user = signed_in_user(info)
    key_id = inputs.key_id(id)
    async with in_transaction():
        key = await _locked_key(user, key_id)
        await key.delete()
        await record_event(
            AuditAction.KEY_DELETED,
            organization_id=user.organization_id,
            actor=user,
            client_ip=info.context.client_ip,
            key_id=key_id,
        )
        await publish_key_change(key_id)
    await _key_changed(info.context, key_id)
    return DeletedApiKey(id=strawberry.ID(key_id))


@strawberry.type
class Mutation:
    """Signing in and out, and creating, disabling, enabling, regenerating, deleting keys."""

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
            "old secret stops working when this returns; the new one is shown only here."
        ),
        extensions=[admin_only()],
    )
    delete_api_key: DeletedApiKey = strawberry.mutation(
        resolver=resolve_delete_api_key,
        description="Delete a key permanently; calls with it are refused from then on.",
        extensions=[admin_only()],
    )
