"""The API-key lifecycle: create, disable or enable, regenerate, delete, read.

Every face (GraphQL, the console, a script) calls :class:`KeyManager`, as fastapi-users'
routers call its ``BaseUserManager``. Each change is one transaction holding the change, its
audit event and its announcement (:func:`~wfa_keys.changes.publish_key_change`), so that all
three exist or none does; a change that stops a key's credentials from working also deletes
the key's access tokens in that transaction (revoked, not suspended: enabling the key again
brings none back). Argon2 runs before the transaction, behind the service's one limiter
(:mod:`wfa_keys.hashing`), so that neither the event loop nor a row lock waits for it.

Failures are :mod:`wfa_keys.errors`: :class:`~wfa_keys.errors.InvalidInput`,
:class:`~wfa_keys.errors.NotFound` (another organization's key is simply not found).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from wfa_auth import Argon2Verifier
from wfa_keys import validation
from wfa_keys.audit import record_event
from wfa_keys.changes import publish_key_change
from wfa_keys.crypto import generate_key_id, new_key_secret
from wfa_keys.errors import NotFound
from wfa_keys.hashing import run_argon2
from wfa_keys.models import ApiKey, AuditAction, User
from wfa_keys.store import TortoiseTokenStore

__all__ = ["Actor", "KeyChanged", "KeyManager", "NewSecret"]

logger = logging.getLogger("wfa_keys.keys")

#: Awaited with a Key ID after a change to that key is committed (drops this process's cache).
KeyChanged = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts, for the organization scope and the audit log: a user and their address."""

    user: User
    client_ip: str | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class NewSecret:
    """A key with its new Key Secret: the only time the secret exists in plain text."""

    key: ApiKey
    key_secret: str

    def __repr__(self) -> str:
        return f"NewSecret(key_id={self.key.key_id!r}, key_secret='***')"


async def _record_change(actor: Actor, action: AuditAction, key_id: str) -> None:
    """The audit event and the announcement of a change, in the change's transaction."""
    await record_event(
        action,
        organization_id=actor.user.organization_id,
        actor=actor.user,
        client_ip=actor.client_ip,
        key_id=key_id,
    )
    await publish_key_change(key_id)


class KeyManager:
    """The rules of the key lifecycle, for any caller.

    ``on_key_changed(key_id)`` is awaited after each committed change (in this process:
    the middleware's ``key_changed``); other processes learn of it from the announcement
    written in the transaction.
    """

    def __init__(
        self,
        hasher: Argon2Verifier,
        *,
        on_key_changed: KeyChanged | None = None,
        tokens: TortoiseTokenStore | None = None,
    ) -> None:
        self.hasher = hasher
        self.on_key_changed = on_key_changed
        self.tokens = tokens if tokens is not None else TortoiseTokenStore()

    async def get_key(self, actor: Actor, key_id: str) -> ApiKey | None:
        """The organization's key with this Key ID (owner and organization loaded), or None."""
        key_id = validation.key_id(key_id)
        return (
            await ApiKey.filter(organization_id=actor.user.organization_id, key_id=key_id)
            .select_related("owner__organization")
            .first()
        )

    def keys(self, actor: Actor, *, search: str | None = None) -> QuerySet[ApiKey]:
        """The organization's keys whose name or Key ID contains ``search`` (ignoring case),
        newest first, owners and organizations loaded; page it as the face needs."""
        text = validation.search_text(search)
        query = ApiKey.filter(organization_id=actor.user.organization_id)
        if text is not None:
            query = query.filter(Q(name__icontains=text) | Q(key_id__icontains=text))
        return query.select_related("owner__organization").order_by("-created_at", "-id")

    async def create_key(
        self, actor: Actor, *, name: str, lifetime_days: int | None = None
    ) -> NewSecret:
        """Create an enabled key owned by ``actor``; its secret is in the result only."""
        name = validation.key_name(name)
        days = validation.lifetime_days(lifetime_days)
        secret = await run_argon2(new_key_secret, self.hasher)
        user = actor.user
        now = datetime.now(UTC)
        async with in_transaction():
            key = await ApiKey.create(
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
                client_ip=actor.client_ip,
                key_id=key.key_id,
            )
        key.owner = user
        return NewSecret(key, secret.secret)

    async def set_key_enabled(self, actor: Actor, key_id: str, enabled: bool) -> ApiKey:
        """Disable or enable a key. Disabling deletes its access tokens: enabling the key
        again brings none of them back. Setting the state it has changes nothing."""
        key_id = validation.key_id(key_id)
        changed = False
        async with in_transaction():
            key = await self._locked_key(actor, key_id)
            if key.enabled != enabled:
                changed = True
                key.enabled = enabled
                await key.save(update_fields=["enabled"])
                if not enabled:
                    await self.tokens.delete_tokens_for_key(key_id)
                await _record_change(
                    actor, AuditAction.KEY_ENABLED if enabled else AuditAction.KEY_DISABLED, key_id
                )
        if changed:
            await self._changed(actor, key_id)
        await key.fetch_related("owner__organization")
        return key

    async def regenerate_key(self, actor: Actor, key_id: str) -> NewSecret:
        """Replace the key's secret; the old secret and every token issued for it stop working."""
        key_id = validation.key_id(key_id)
        secret = await run_argon2(new_key_secret, self.hasher)
        async with in_transaction():
            key = await self._locked_key(actor, key_id)
            key.secret_hash = secret.secret_hash
            key.secret_regenerated_at = datetime.now(UTC)
            await key.save(update_fields=["secret_hash", "secret_regenerated_at"])
            await self.tokens.delete_tokens_for_key(key_id)
            await _record_change(actor, AuditAction.KEY_REGENERATED, key_id)
        await self._changed(actor, key_id)
        await key.fetch_related("owner__organization")
        return NewSecret(key, secret.secret)

    async def delete_key(self, actor: Actor, key_id: str) -> str:
        """Delete a key and its access tokens for good; returns its Key ID."""
        key_id = validation.key_id(key_id)
        async with in_transaction():
            key = await self._locked_key(actor, key_id)
            await key.delete()
            await self.tokens.delete_tokens_for_key(key_id)
            await _record_change(actor, AuditAction.KEY_DELETED, key_id)
        await self._changed(actor, key_id)
        return key_id

    @staticmethod
    async def _locked_key(actor: Actor, key_id: str) -> ApiKey:
        """The actor's organization's key, locked until the transaction ends; else NotFound."""
        key = (
            await ApiKey.filter(organization_id=actor.user.organization_id, key_id=key_id)
            .select_for_update()
            .first()
        )
        if key is None:
            raise NotFound()
        return key

    async def _changed(self, actor: Actor, key_id: str) -> None:
        """Tell this process's middleware at once; the change is committed already."""
        if self.on_key_changed is None:
            return
        try:
            await self.on_key_changed(key_id)
        except Exception:
            # The change is committed (and announced) and must be reported as done; the
            # cache entry is dropped by the listener or expires.
            logger.exception(
                "could not drop the cached record of key %s (request %s)",
                key_id,
                actor.request_id or "-",
            )
