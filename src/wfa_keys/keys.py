"""The API-key lifecycle: create, change, disable or enable, regenerate, delete, read.

Every face (GraphQL, the console, a script) calls :class:`KeyManager`, as fastapi-users'
routers call its ``BaseUserManager``. Each change is one transaction holding the change, its
audit event and its announcement (:func:`~wfa_keys.changes.publish_key_change`), so that all
three exist or none does; a change that stops a key's credentials from working also deletes
the key's access tokens in that transaction (revoked, not suspended: enabling the key again
brings none back). Argon2 runs before the transaction, behind the service's one limiter
(:mod:`wfa_keys.hashing`), so that neither the event loop nor a row lock waits for it.

A regeneration may keep the old secret valid for a grace period (``previous_secret_hash``
until ``previous_secret_expires_at``), with the tokens issued for it; revoking the previous
secret, disabling or deleting the key ends the grace period at once.

Failures are :mod:`wfa_keys.errors`: :class:`~wfa_keys.errors.InvalidInput`,
:class:`~wfa_keys.errors.NotFound` (another organization's key is simply not found).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID

from tortoise.expressions import Q
from tortoise.filters import escape_like
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from wfa_auth import Argon2Verifier, Quota, RateLimit, is_valid_key_id
from wfa_keys import validation
from wfa_keys.audit import COMMAND_LINE_ACTOR, record_event
from wfa_keys.changes import publish_key_change
from wfa_keys.crypto import generate_key_id, new_key_secret
from wfa_keys.errors import NotFound
from wfa_keys.hashing import run_argon2
from wfa_keys.models import ApiKey, AuditAction, Organization, User
from wfa_keys.store import TortoiseTokenStore

__all__ = [
    "COMMAND_LINE_ACTOR",
    "UNCHANGED",
    "Actor",
    "KeyChanged",
    "KeyManager",
    "KeyStatus",
    "NewSecret",
    "Unchanged",
    "key_status",
]

logger = logging.getLogger("wfa_keys.keys")

#: Awaited with a Key ID after a change to that key is committed (drops this process's cache).
KeyChanged = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts, for the organization scope and the audit log: a user and their address.

    The command line acts without a user, on one organization (:meth:`command_line`); it
    cannot create keys, which need an owner.
    """

    user: User | None
    client_ip: str | None = None
    request_id: str | None = None
    on_organization_id: UUID | str | None = None

    @classmethod
    def command_line(cls, organization_id: UUID | str) -> Actor:
        """The ``wfa-keys`` command line acting on an organization's keys."""
        return cls(None, on_organization_id=organization_id)

    @property
    def organization_id(self) -> UUID | str:
        """The organization the actor acts on: the user's, or the command line's."""
        if self.user is not None:
            return self.user.organization_id
        if self.on_organization_id is None:
            raise ValueError("an actor needs a user or an organization")
        return self.on_organization_id

    @property
    def audit_name(self) -> str | None:
        """Who acted, as the audit log records it when there is no user."""
        return None if self.user is not None else COMMAND_LINE_ACTOR


@dataclass(frozen=True, slots=True)
class NewSecret:
    """A key with its new Key Secret: the only time the secret exists in plain text."""

    key: ApiKey
    key_secret: str

    def __repr__(self) -> str:
        return f"NewSecret(key_id={self.key.key_id!r}, key_secret='***')"


class KeyStatus(StrEnum):
    """A key's status as the API shows it; an expired key is EXPIRED even when disabled."""

    ACTIVE = "active"
    DISABLED = "disabled"
    EXPIRED = "expired"


def key_status(key: ApiKey, now: datetime | None = None) -> KeyStatus:
    """The key's status now: an expired key is EXPIRED even when disabled."""
    now = now or datetime.now(UTC)
    if key.expires_at is not None and key.expires_at <= now:
        return KeyStatus.EXPIRED
    return KeyStatus.ACTIVE if key.enabled else KeyStatus.DISABLED


@dataclass(frozen=True, slots=True)
class KeyFilter:
    """Which of an organization's keys a list shows, checked (see :meth:`KeyManager.key_filter`).

    Lists of one :attr:`shape` differ only in the values their SQL compares with, which
    :meth:`parameters` gives without building a query: the admin list builds its statement
    once per shape (``graphql/pagination.py``).
    """

    model: ClassVar[type[ApiKey]] = ApiKey
    organization_id: UUID | str
    text: str | None
    whole_key_id: bool
    status: KeyStatus | None
    expiring_within_days: int | None
    now: datetime

    @property
    def shape(self) -> tuple[bool, bool, KeyStatus | None, bool]:
        """What the filter's SQL depends on, apart from the values."""
        return (
            self.text is not None,
            self.whole_key_id,
            self.status,
            self.expiring_within_days is not None,
        )

    def query(self) -> QuerySet[ApiKey]:
        """The matching keys; unordered, nothing joined."""
        query = ApiKey.filter(organization_id=self.organization_id)
        text, now = self.text, self.now
        if text is not None:
            by_key_id = Q(key_id__iexact=text) if self.whole_key_id else Q(key_id__icontains=text)
            query = query.filter(Q(name__icontains=text) | by_key_id)
        not_expired = Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        if self.status is KeyStatus.EXPIRED:
            query = query.filter(expires_at__lte=now)
        elif self.status is KeyStatus.ACTIVE:
            query = query.filter(not_expired, enabled=True)
        elif self.status is KeyStatus.DISABLED:
            query = query.filter(not_expired, enabled=False)
        if self.expiring_within_days is not None:
            until = now + timedelta(days=self.expiring_within_days)
            query = query.filter(expires_at__gt=now, expires_at__lte=until)
        return query

    def parameters(self) -> list[Any]:
        """The values :meth:`query`'s SQL compares with, in the order of its placeholders, as
        Tortoise sends them (checked against Tortoise's on a shape's first use)."""
        values: list[Any] = [str(self.organization_id)]
        if self.text is not None:
            pattern = f"%{escape_like(self.text)}%"
            values += (pattern, self.text if self.whole_key_id else pattern)
        if self.status is KeyStatus.EXPIRED:
            values.append(self.now)
        elif self.status is not None:
            values += (self.now, self.status is KeyStatus.ACTIVE)
        if self.expiring_within_days is not None:
            values += (self.now, self.now + timedelta(days=self.expiring_within_days))
        return values


async def _record_change(
    actor: Actor, action: AuditAction, key_id: str, detail: dict[str, Any] | None = None
) -> None:
    """The audit event and the announcement of a change, in the change's transaction."""
    await record_event(
        action,
        organization_id=actor.organization_id,
        actor=actor.user,
        actor_name=actor.audit_name,
        client_ip=actor.client_ip,
        key_id=key_id,
        detail=detail,
    )
    await publish_key_change(
        key_id, organization_id=actor.organization_id, kind=_CHANGE_KINDS.get(action)
    )


#: What the change stream calls each change (``GET /api/v1/keys/changes``).
_CHANGE_KINDS = {
    AuditAction.KEY_ENABLED: "enabled",
    AuditAction.KEY_DISABLED: "disabled",
    AuditAction.KEY_REGENERATED: "regenerated",
    AuditAction.PREVIOUS_SECRET_REVOKED: "grace_ended",
    AuditAction.KEY_UPDATED: "updated",
    AuditAction.KEY_DELETED: "deleted",
}


def _has_valid_previous_secret(key: ApiKey, now: datetime) -> bool:
    return (
        key.previous_secret_hash is not None
        and key.previous_secret_expires_at is not None
        and key.previous_secret_expires_at > now
    )


def _end_grace_period(key: ApiKey) -> list[str]:
    """Forget the previous secret; the fields to save."""
    key.previous_secret_hash = None
    key.previous_secret_expires_at = None
    return ["previous_secret_hash", "previous_secret_expires_at"]


#: Audit details name the fields as the API does.
_API_NAMES = {
    "allowed_cidrs": "allowedCidrs",
    "rate_limit_requests": "rateLimit",
    "rate_limit_per_seconds": "rateLimit",
    "quota_requests": "quota",
    "quota_period": "quota",
}


class Unchanged:
    """The type of :data:`UNCHANGED`: a field of an update left as it is (None removes)."""


#: Leave a rate limit or quota as it is in :meth:`KeyManager.update_key`.
UNCHANGED = Unchanged()


def _rate_limit_fields(rate_limit: RateLimit | None) -> dict[str, Any]:
    if rate_limit is None:
        return {"rate_limit_requests": None, "rate_limit_per_seconds": None}
    return {
        "rate_limit_requests": rate_limit.requests,
        "rate_limit_per_seconds": rate_limit.per_seconds,
    }


def _quota_fields(quota: Quota | None) -> dict[str, Any]:
    if quota is None:
        return {"quota_requests": None, "quota_period": None}
    return {"quota_requests": quota.requests, "quota_period": quota.period}


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
            await ApiKey.filter(organization_id=actor.organization_id, key_id=key_id)
            .select_related("owner__organization")
            .first()
        )

    def keys(
        self,
        actor: Actor,
        *,
        search: str | None = None,
        status: KeyStatus | None = None,
        expiring_within_days: int | None = None,
    ) -> QuerySet[ApiKey]:
        """The organization's keys, newest first, owners and organizations loaded; page it as
        the face needs. See :meth:`key_filter` for the filters."""
        return (
            self.key_filter(
                actor, search=search, status=status, expiring_within_days=expiring_within_days
            )
            .query()
            .select_related("owner__organization")
            .order_by("-created_at", "-id")
        )

    def key_filter(
        self,
        actor: Actor,
        *,
        search: str | None = None,
        status: KeyStatus | None = None,
        expiring_within_days: int | None = None,
        now: datetime | None = None,
    ) -> KeyFilter:
        """The organization's keys whose name or Key ID contains ``search`` (ignoring case),
        of ``status`` (as the API computes it), expiring between now and
        ``expiring_within_days`` days from now: checked, as a filter (its :meth:`KeyFilter.query`
        is unordered, nothing joined: a page of plain rows is built from it)."""
        text = validation.search_text(search)
        days = validation.expiring_within_days(expiring_within_days)
        return KeyFilter(
            organization_id=actor.organization_id,
            text=text,
            # Every Key ID has the same length: one that contains a whole Key ID is that Key
            # ID, found by a B-tree on UPPER(key_id) (0010) instead of twenty-odd trigrams.
            whole_key_id=text is not None and is_valid_key_id(text[:5].lower() + text[5:]),
            status=status,
            expiring_within_days=days,
            now=now or datetime.now(UTC),
        )

    async def create_key(
        self,
        actor: Actor,
        *,
        name: str,
        lifetime_days: int | None = None,
        scopes: Sequence[str] | None = None,
        allowed_cidrs: Sequence[str] | None = None,
        rate_limit: RateLimit | None = None,
        quota: Quota | None = None,
    ) -> NewSecret:
        """Create an enabled key owned by ``actor``; its secret is in the result only.

        ``scopes`` None grants every default scope (all but ``keys:verify``);
        ``allowed_cidrs`` None or empty allows calls from anywhere.
        """
        name = validation.key_name(name)
        days = validation.lifetime_days(lifetime_days)
        granted = validation.scopes(scopes)
        networks = validation.allowed_cidrs(allowed_cidrs)
        limit_fields = {
            **_rate_limit_fields(validation.rate_limit(rate_limit)),
            **_quota_fields(validation.quota(quota)),
        }
        secret = await run_argon2(new_key_secret, self.hasher)
        user = actor.user
        if user is None:
            raise ValueError("a key is created by a user, its owner")
        now = datetime.now(UTC)
        async with in_transaction():
            key = await ApiKey.create(
                key_id=generate_key_id(),
                name=name,
                secret_hash=secret.secret_hash,
                enabled=True,
                created_at=now,
                expires_at=now + timedelta(days=days) if days is not None else None,
                scopes=granted,
                allowed_cidrs=networks,
                **limit_fields,
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
        """Disable or enable a key. Disabling deletes its access tokens and ends a grace
        period: enabling the key again brings neither back. Setting the state it has changes
        nothing."""
        key_id = validation.key_id(key_id)
        changed = False
        async with in_transaction():
            key = await self._locked_key(actor, key_id)
            if key.enabled != enabled:
                changed = True
                key.enabled = enabled
                fields = ["enabled"]
                if enabled:
                    # Activity for the inactivity check: not disabled again by its next run.
                    key.enabled_at = datetime.now(UTC)
                    fields.append("enabled_at")
                else:
                    fields += _end_grace_period(key)
                await key.save(update_fields=fields)
                if not enabled:
                    await self.tokens.delete_tokens_for_key(key_id)
                await _record_change(
                    actor, AuditAction.KEY_ENABLED if enabled else AuditAction.KEY_DISABLED, key_id
                )
        if changed:
            await self._changed(actor, key_id)
        await key.fetch_related("owner__organization")
        return key

    async def regenerate_key(
        self, actor: Actor, key_id: str, *, grace_period_minutes: int = 0
    ) -> NewSecret:
        """Replace the key's secret.

        With a grace period of 0 the old secret and every token issued for it stop working
        now. Otherwise the secret being replaced, and the tokens issued for it, keep working
        for that many minutes; a secret replaced earlier stops now (only one old secret is
        ever valid), and so do its tokens.
        """
        key_id = validation.key_id(key_id)
        minutes = validation.grace_period_minutes(grace_period_minutes)
        secret = await run_argon2(new_key_secret, self.hasher)
        async with in_transaction():
            key = await self._locked_key(actor, key_id)
            now = datetime.now(UTC)
            replaced = key.secret_hash
            if minutes:
                key.previous_secret_hash = replaced
                key.previous_secret_expires_at = now + timedelta(minutes=minutes)
            else:
                _end_grace_period(key)
            key.secret_hash = secret.secret_hash
            key.secret_regenerated_at = now
            await key.save(
                update_fields=[
                    "secret_hash",
                    "secret_regenerated_at",
                    "previous_secret_hash",
                    "previous_secret_expires_at",
                ]
            )
            if minutes:
                await self.tokens.delete_tokens_not_issued_for(key_id, replaced)
            else:
                await self.tokens.delete_tokens_for_key(key_id)
            await _record_change(
                actor, AuditAction.KEY_REGENERATED, key_id, {"gracePeriodMinutes": minutes}
            )
        await self._changed(actor, key_id)
        await key.fetch_related("owner__organization")
        return NewSecret(key, secret.secret)

    async def revoke_previous_secret(self, actor: Actor, key_id: str) -> ApiKey:
        """End a grace period now: the previous secret and the tokens issued for it stop
        working. A key without a valid previous secret is returned unchanged, with no event."""
        key_id = validation.key_id(key_id)
        changed = False
        async with in_transaction():
            key = await self._locked_key(actor, key_id)
            if _has_valid_previous_secret(key, datetime.now(UTC)):
                changed = True
                await key.save(update_fields=_end_grace_period(key))
                await self.tokens.delete_tokens_not_issued_for(key_id, key.secret_hash)
                await _record_change(actor, AuditAction.PREVIOUS_SECRET_REVOKED, key_id)
        if changed:
            await self._changed(actor, key_id)
        await key.fetch_related("owner__organization")
        return key

    async def update_key(
        self,
        actor: Actor,
        key_id: str,
        *,
        name: str | None = None,
        scopes: Sequence[str] | None = None,
        allowed_cidrs: Sequence[str] | None = None,
        rate_limit: RateLimit | Unchanged | None = UNCHANGED,
        quota: Quota | Unchanged | None = UNCHANGED,
    ) -> ApiKey:
        """Change a key's name, scopes, allowed networks, rate limit or quota; None leaves
        the first three as they are, :data:`UNCHANGED` the last two (None removes them).

        Empty ``scopes`` grants no scope (only calls that need none work); empty
        ``allowed_cidrs`` allows every address. Every value is checked before anything is
        written; an update that changes nothing records no event.
        """
        key_id = validation.key_id(key_id)
        wanted: dict[str, Any] = {}
        if name is not None:
            wanted["name"] = validation.key_name(name)
        if scopes is not None:
            wanted["scopes"] = validation.scopes(scopes)
        if allowed_cidrs is not None:
            wanted["allowed_cidrs"] = validation.allowed_cidrs(allowed_cidrs)
        if not isinstance(rate_limit, Unchanged):
            wanted.update(_rate_limit_fields(validation.rate_limit(rate_limit)))
        if not isinstance(quota, Unchanged):
            wanted.update(_quota_fields(validation.quota(quota)))
        async with in_transaction():
            key = await self._locked_key(actor, key_id)
            changed = [field for field, value in wanted.items() if getattr(key, field) != value]
            if changed:
                for field in changed:
                    setattr(key, field, wanted[field])
                await key.save(update_fields=changed)
                await _record_change(
                    actor,
                    AuditAction.KEY_UPDATED,
                    key_id,
                    {"changed": list(dict.fromkeys(_API_NAMES.get(f, f) for f in changed))},
                )
        if changed:
            await self._changed(actor, key_id)
        await key.fetch_related("owner__organization")
        return key

    async def delete_key(self, actor: Actor, key_id: str) -> str:
        """Delete a key and its access tokens for good (with its previous secret, if any);
        returns its Key ID."""
        key_id = validation.key_id(key_id)
        async with in_transaction():
            key = await self._locked_key(actor, key_id)
            # Recorded first, so that the webhook payload can still name the key.
            await _record_change(actor, AuditAction.KEY_DELETED, key_id)
            await key.delete()
            await self.tokens.delete_tokens_for_key(key_id)
        await self._changed(actor, key_id)
        return key_id

    async def set_key_inactivity_days(self, actor: Actor, days: int | None) -> Organization:
        """Set after how many days without use (or since creation) the organization's keys
        are disabled; None: never. The periodic check of every server applies it."""
        days = validation.key_inactivity_days(days)
        async with in_transaction():
            organization = (
                await Organization.filter(id=actor.organization_id).select_for_update().first()
            )
            if organization is None:  # pragma: no cover - a signed-in user has one
                raise NotFound()
            if organization.key_inactivity_days != days:
                organization.key_inactivity_days = days
                await organization.save(update_fields=["key_inactivity_days"])
        return organization

    @staticmethod
    async def _locked_key(actor: Actor, key_id: str) -> ApiKey:
        """The actor's organization's key, locked until the transaction ends; else NotFound."""
        key = (
            await ApiKey.filter(organization_id=actor.organization_id, key_id=key_id)
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
