"""The plug-in points of :class:`~wfa_auth.ApiKeyAuthMiddleware`, as :class:`typing.Protocol` s.

Each has a default implementation in a module of its own; write your own to plug the
middleware into another database, cache or hashing scheme.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from wfa_auth._principal import ApiKeyUser


@runtime_checkable
class KeyRecord(Protocol):
    """What the middleware needs to know of one API key and of who owns it."""

    @property
    def key_id(self) -> str:
        """The public Key ID."""
        ...

    @property
    def name(self) -> str:
        """The name an admin gave the key."""
        ...

    @property
    def secret_hash(self) -> str:
        """The hash of the Key Secret (never the secret itself)."""
        ...

    @property
    def enabled(self) -> bool:
        """False when an admin has disabled the key."""
        ...

    @property
    def expires_at(self) -> datetime | None:
        """When the key stops working (timezone-aware), or None for never."""
        ...

    @property
    def owner_id(self) -> str:
        """The ID of the admin who created the key."""
        ...

    @property
    def owner_email(self) -> str:
        """The email of the admin who created the key; ``request.user.display_name``."""
        ...

    @property
    def owner_is_active_admin(self) -> bool:
        """False once the owner is deactivated or is no longer an admin."""
        ...

    @property
    def organization_id(self) -> str:
        """The ID of the organization the key belongs to."""
        ...

    @property
    def organization_name(self) -> str:
        """The name of the organization the key belongs to."""
        ...

    @property
    def organization_subscribed(self) -> bool:
        """True while the organization subscribes to Workflow Automation."""
        ...

    @property
    def scopes(self) -> Sequence[str]:
        """What the key may do (``workflows:read``, ...): put in ``request.auth.scopes``.

        Least privilege: an endpoint that requires a scope refuses a key without it, so a
        leaked key reaches only what it was given.
        """
        ...

    @property
    def allowed_cidrs(self) -> Sequence[str]:
        """The networks (``10.0.0.0/8``, ``2001:db8::/32``) the key may be used from; empty
        for anywhere. A stolen secret is useless from elsewhere: refused 403 ``ip_not_allowed``
        once the secret matched."""
        ...

    @property
    def previous_secret_hash(self) -> str | None:
        """The hash of the secret a regeneration replaced, accepted (with the tokens issued
        for it) until :attr:`previous_secret_expires_at`, so clients can roll over without
        an outage; None when there is none."""
        ...

    @property
    def previous_secret_expires_at(self) -> datetime | None:
        """When the previous secret stops working (timezone-aware); it is refused from then
        on, whatever is cached. None or a past time: only the current secret works."""
        ...

    # Optional, read with getattr (a record without them has neither): ``rate_limit``, a
    # :class:`RateLimit` or None, and ``quota``, a :class:`Quota` or None.


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``requests`` calls in any ``per_seconds`` seconds (a sliding window).

    A :class:`KeyRecord` may have a ``rate_limit`` attribute of this type (None or absent:
    no limit); calls over it are refused 429 ``rate_limited``.
    """

    requests: int
    per_seconds: int


@dataclass(frozen=True, slots=True)
class Quota:
    """At most ``requests`` calls per UTC calendar ``period`` (``"day"`` or ``"month"``).

    A :class:`KeyRecord` may have a ``quota`` attribute of this type (None or absent: no
    quota); calls beyond it are refused 429 ``quota_exceeded`` until the period ends.
    """

    requests: int
    period: str


@dataclass(frozen=True, slots=True)
class Taken:
    """What :meth:`CounterStore.take` granted: ``granted`` units (0 when the window is
    full), the window's ``total`` after the grant (every process's), and ``oldest``, the
    oldest slot of the window that holds a count (``slot`` itself when none does)."""

    granted: int
    total: int
    oldest: int


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An access token as stored: never the token, only what it was issued for."""

    key_id: str
    #: A keyed digest of the key's ``secret_hash`` when the token was issued: regenerating
    #: the secret changes the hash, so every token obtained with the old secret stops working
    #: (when the grace period ends, if the key was regenerated with one).
    secret_fingerprint: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Usage:
    """The latest use of a key in a write interval: when, and from which client address
    (None when the server did not know it), for ``last_used_at`` and ``last_used_ip``."""

    at: datetime
    ip: str | None


class KeyStore(Protocol):
    """Where key records live (a database table, a dict, a remote service)."""

    async def get_key(self, key_id: str) -> KeyRecord | None:
        """The key with this Key ID, or None when there is none."""
        ...

    async def replace_secret_hash(self, key_id: str, old_hash: str, new_hash: str) -> None:
        """Store a rehashed secret, only if the stored hash is still ``old_hash``."""
        ...

    async def record_usage(self, last_used: Mapping[str, Usage]) -> None:
        """Set each Key ID's last use (time and address), in one write where the store allows;
        never move a stored time backwards."""
        ...


class TokenStore(Protocol):
    """Where access tokens live, by a hash of the token (never the token itself).

    A key has at most ``max_per_key`` live tokens: saving one more deletes that key's oldest
    (by ``expires_at``), so that a client asking for a token per call cannot fill the store.
    """

    async def save_token(self, token_hash: str, record: TokenRecord, *, max_per_key: int) -> None:
        """Remember a newly issued token; then delete the key's oldest beyond ``max_per_key``."""
        ...

    async def get_token(self, token_hash: str) -> TokenRecord | None:
        """The token with this hash, or None when unknown."""
        ...

    async def delete_token(self, token_hash: str) -> None:
        """Forget a token (expired or revoked)."""
        ...

    async def delete_tokens_for_key(self, key_id: str) -> None:
        """Forget every token of ``key_id`` (the key was disabled, regenerated or deleted)."""
        ...


class SecretVerifier(Protocol):
    """Hashes Key Secrets and checks a presented secret against a stored hash."""

    def hash(self, secret: str) -> str:
        """A new hash of ``secret``."""
        ...

    def verify(self, secret_hash: str, secret: str) -> bool:
        """True when ``secret`` matches; constant-time; may block, so it runs in a thread."""
        ...

    def needs_rehash(self, secret_hash: str) -> bool:
        """True when ``secret_hash`` was made with other parameters than the current ones."""
        ...

    @property
    def dummy_hash(self) -> str:
        """A hash of no real secret, with the current parameters, verified against when a
        Key ID is unknown: the answer then takes as long as for a real key."""
        ...


@dataclass(frozen=True, slots=True)
class KeyCredentials:
    """A Key ID and Key Secret presented directly with a request."""

    key_id: str
    key_secret: str

    def __repr__(self) -> str:
        # The secret never reaches a log line through a repr.
        return f"KeyCredentials(key_id={self.key_id!r}, key_secret='***')"


@dataclass(frozen=True, slots=True)
class BearerCredentials:
    """An access token obtained from the token endpoint."""

    token: str

    def __repr__(self) -> str:
        return "BearerCredentials(token='***')"


Credentials = KeyCredentials | BearerCredentials


class MalformedCredentials(Exception):
    """Credentials were presented but cannot be parsed; answered 401 ``invalid_request``."""


class CredentialExtractor(Protocol):
    """Finds credentials in a request's scope."""

    def extract(self, scope: Scope) -> Credentials | None:
        """The credentials in ``scope``; None when there are none; raises MalformedCredentials."""
        ...


class Cache(Protocol):
    """A small key-value cache with expiry, for records and verified credentials."""

    async def get(self, key: str) -> Any | None:
        """The value under ``key``, or None when absent or expired."""
        ...

    async def set(self, key: str, value: Any, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``."""
        ...


class ThrottleStore(Protocol):
    """Shared counters for throttling: buckets of members, each alive for ``window`` seconds.

    A bucket holds at most ``limit`` live members. The middleware reserves a member *before*
    the expensive check, so concurrent attempts can never exceed a limit, and releases it (or
    clears the bucket) after a success. Buckets and members are short digests (at most 64
    characters), never raw client input. Implementations must make :meth:`reserve` atomic
    across every process that shares the store (a lock, a transaction or a script).
    """

    async def reserve(self, bucket: str, member: str, *, limit: int, window: float) -> float | None:
        """Add ``member`` (or renew it, if present) unless ``bucket`` is full.

        Returns None when the member is in the bucket, else the seconds until a slot frees.
        With ``limit`` 0 nothing is added: a member already present is renewed (None), any
        other gets a number, even from an empty bucket (a membership test, which the
        middleware uses for keys known good from an address).
        """
        ...

    async def release(self, bucket: str, member: str) -> None:
        """Remove ``member`` from ``bucket``."""
        ...

    async def clear(self, bucket: str) -> None:
        """Remove every member of ``bucket``."""
        ...


class CounterStore(Protocol):
    """Shared counters for rate limits and quotas: per bucket, a count per time slot.

    A process takes units in advance (a lease) and uses them without asking again, so a
    warm request never waits on the store; what it did not use it gives back. :meth:`take`
    must be atomic across every process that shares the store: the units granted to all
    of them in a window never exceed the limit.
    """

    async def take(self, bucket: str, slot: int, amount: int, *, limit: int, span: int) -> Taken:
        """Grant up to ``amount`` units in ``slot``, so that the counts of the ``span`` slots
        ending with ``slot`` stay within ``limit``; count them in ``slot``."""
        ...

    async def give_back(self, units: Mapping[tuple[str, int], int]) -> None:
        """Uncount units taken but not used, by (bucket, slot); never below zero."""
        ...

    async def count(self, bucket: str, slot: int) -> int:
        """The units counted in one slot of a bucket."""
        ...


class CallSink(Protocol):
    """Where per-key call counts go: by (Key ID, organization ID, hour), a count per
    outcome in the order of :data:`wfa_auth.CALL_OUTCOMES`."""

    async def record_calls(self, counts: Mapping[tuple[str, str, datetime], Sequence[int]]) -> None:
        """Add the counts to the stored ones, in one write where the store allows."""
        ...


class AuthObserver(Protocol):
    """Told of each authentication outcome, for metrics; must be cheap and never raise."""

    def on_authenticated(self, *, warm: bool) -> None:
        """A request was let through; ``warm`` when no lookup or hash was needed."""
        ...

    def on_refused(self, error: str) -> None:
        """A request was refused with this error code (``too_many_attempts`` when throttled)."""
        ...

    def on_verification(self, seconds: float) -> None:
        """A secret was verified with the slow hash, taking ``seconds``."""
        ...


class ErrorResponder(Protocol):
    """Sends the response for a refused request."""

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        status: int,
        error: str,
        message: str,
        headers: Mapping[str, str],
    ) -> None:
        """Send a complete HTTP response (or close a websocket) for the refusal."""
        ...


class Authority(Protocol):
    """Decides who credentials belong to in place of the middleware's own checks: a remote
    service (:class:`wfa_auth.remote.RemoteAuthority`) that verifies keys it issued.

    The middleware still extracts credentials, answers refusals and sets ``request.user``,
    ``request.auth`` and the key; the authority checks, caches and forgets.
    """

    def bind(self, *, scopes: Sequence[str], observer: AuthObserver | None) -> None:
        """Told once by the middleware: the scopes it grants every key, and its observer."""
        ...

    def header_memo(self, raw: bytes) -> bytes:
        """A keyed digest of an ``Authorization`` header as received (never the header)."""
        ...

    def warm(self, memo: bytes, client: Any) -> ApiKeyUser | None:
        """Who the credentials under ``memo`` belong to without any I/O, or None; raises
        AuthenticationRefused when the key's allow-list refuses ``client``."""
        ...

    async def authenticate(
        self, credentials: Credentials, client: Any, header_memo: bytes | None = None
    ) -> ApiKeyUser:
        """Who the credentials belong to, or raise AuthenticationRefused."""
        ...

    async def key_changed(self, key_id: str) -> None:
        """Forget what is cached for ``key_id``."""
        ...

    def all_keys_changed(self) -> None:
        """Forget everything cached."""
        ...

    def running(self) -> AbstractAsyncContextManager[None]:
        """The authority's background work (a change stream) while entered."""
        ...
