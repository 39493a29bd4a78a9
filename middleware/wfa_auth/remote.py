"""Remote verification: check keys issued by a running ``wfa-keys`` service, from any ASGI app.

Needs ``pip install 'wfa-auth[remote]'``; httpx is imported here only, never by the rest of
``wfa_auth``. Pass a :class:`RemoteAuthority` to the middleware in place of a key store::

    authority = RemoteAuthority("https://keys.example.com", key_id=..., key_secret=...)
    app = ApiKeyAuthMiddleware(app, authority=authority)

The authority's own key needs the ``keys:verify`` scope. Each new credential is checked with
``POST /api/v1/keys/verify`` (the service applies its throttles, allow-lists and grace
periods, and the key's rate limit and quota; it records the key's last use with the caller's
address, and counts the verification in the key's usage); a valid answer is kept in this
process, under a keyed digest of the credentials (never the credentials), for at most the
answer's ``cache_ttl``, so that a warm request makes **no network call**. The service answers
a key with a rate limit or a quota with ``cache_ttl`` 0: each of its calls is verified, so
each is limited and counted (a network call each); other keys' warm calls are not counted.

``GET /api/v1/keys/changes`` (Server-Sent Events) is followed while the middleware runs (its
lifespan, or ``async with authority.running()``): a change to a key drops what is cached for
it as soon as the event arrives. While the stream is down (not yet connected, cut, silent
for :data:`SILENCE_SECONDS`) nothing cached is trusted longer than ``stale_after`` (1 s) after
it was verified; the stream reconnects with backoff and resumes with ``Last-Event-ID``, and
drops everything when the service cannot say what changed meanwhile. When the service
cannot be reached and nothing valid is cached, requests are refused 503 with
``Retry-After``, never let through.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
import httpx

from wfa_auth import _errors as errors
from wfa_auth._authenticator import client_host
from wfa_auth._errors import AuthenticationRefused, Refusal
from wfa_auth._networks import AllowList, AllowLists
from wfa_auth._principal import ApiKeyUser
from wfa_auth.base import AuthObserver, BearerCredentials, Credentials

__all__ = ["SILENCE_SECONDS", "RemoteAuthority", "RemoteKeyRecord"]

logger = logging.getLogger("wfa_auth.remote")

VERIFY_PATH = "/api/v1/keys/verify"
CHANGES_PATH = "/api/v1/keys/changes"
#: A stream that sends nothing (not even its heartbeat, every few seconds) this long is dead.
SILENCE_SECONDS = 8.0
_MAX_BACKOFF = 5.0
_WARM_ENTRIES = 10_000

#: A warm entry: who, the key's version when checked, when checked and until when it holds
#: (monotonic seconds), and the key's allow-list (None: anywhere).
_Warm = tuple[ApiKeyUser, int, float, float, AllowList | None]


@dataclass(frozen=True, slots=True)
class RemoteKeyRecord:
    """A :class:`~wfa_auth.KeyRecord` as the service described it: never a secret or a hash.

    Only keys the service found valid become records, so the state flags are all true.
    """

    key_id: str
    name: str
    owner_id: str
    owner_email: str
    organization_id: str
    organization_name: str
    scopes: tuple[str, ...]
    allowed_cidrs: tuple[str, ...]
    expires_at: datetime | None
    secret_hash: str = ""
    enabled: bool = True
    owner_is_active_admin: bool = True
    organization_subscribed: bool = True
    previous_secret_hash: str | None = None
    previous_secret_expires_at: datetime | None = None

    @classmethod
    def from_json(cls, key: dict[str, Any]) -> RemoteKeyRecord:
        """The record of the verify endpoint's ``key`` object."""
        expires_at = key.get("expires_at")
        return cls(
            key_id=str(key["key_id"]),
            name=str(key.get("name", "")),
            owner_id=str(key.get("owner_id", "")),
            owner_email=str(key.get("owner_email", "")),
            organization_id=str(key.get("organization_id", "")),
            organization_name=str(key.get("organization_name", "")),
            scopes=tuple(str(s) for s in key.get("scopes", ())),
            allowed_cidrs=tuple(str(c) for c in key.get("allowed_cidrs", ())),
            expires_at=None if expires_at is None else datetime.fromisoformat(expires_at),
        )


# The service's reasons, answered as a local middleware answers them.
_REFUSALS: dict[str, Refusal] = {
    "key_disabled": errors.KEY_DISABLED,
    "key_owner_inactive": errors.KEY_OWNER_INACTIVE,
    "subscription_required": errors.SUBSCRIPTION_REQUIRED,
    "key_expired": errors.KEY_EXPIRED,
    "token_expired": errors.TOKEN_EXPIRED,
    "ip_not_allowed": errors.IP_NOT_ALLOWED,
}
_THROTTLES: dict[Any, Refusal] = {
    "rate_limited": errors.RATE_LIMITED,
    "quota_exceeded": errors.QUOTA_EXCEEDED,
}
_BY_CODE: dict[str, Refusal] = {
    "DISABLED": errors.KEY_DISABLED,
    "EXPIRED": errors.KEY_EXPIRED,
    "IP_NOT_ALLOWED": errors.IP_NOT_ALLOWED,
}


class _Unreachable(Exception):
    """The service did not give a verdict (down, slow, refused our own key)."""


class RemoteAuthority:
    """Verifies credentials through a ``wfa-keys`` service, for
    :class:`~wfa_auth.ApiKeyAuthMiddleware` (``authority=``) and
    :class:`~wfa_auth.fastapi.ApiKeySecurity`.

    ``service_url`` is the service's base URL (``https://keys.example.com``); ``key_id`` and
    ``key_secret`` are a key of the organization with the ``keys:verify`` scope (only that
    organization's keys are ever verified). ``timeout`` bounds each verification call;
    ``max_cache_ttl`` caps the service's ``cache_ttl``; ``stale_after`` is how long a cached
    verification is trusted while the change stream is down. ``retry_after`` is the 503's
    ``Retry-After``. ``transport`` (an ``httpx.AsyncBaseTransport``) and ``timer`` are for
    tests.
    """

    def __init__(
        self,
        service_url: str,
        *,
        key_id: str,
        key_secret: str,
        timeout: float = 5.0,
        max_cache_ttl: float = 60.0,
        stale_after: float = 1.0,
        retry_after: int = 5,
        transport: httpx.AsyncBaseTransport | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service_url = service_url.rstrip("/")
        self.key_id = key_id
        self.timeout = timeout
        self.max_cache_ttl = max_cache_ttl
        self.stale_after = min(stale_after, 1.0)
        self.timer = timer
        self._auth = httpx.BasicAuth(key_id, key_secret)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._unavailable = errors.SERVICE_UNAVAILABLE.with_headers(Retry_After=str(retry_after))
        self._granted: tuple[str, ...] = ("authenticated",)
        self._observer: AuthObserver | None = None
        self._allow_lists = AllowLists()
        self._warm: dict[bytes, _Warm] = {}
        # Keyed digests (a MAC with a key that lives only in this process): the memo never
        # holds anything a secret could be recovered from.
        memo_key = secrets.token_bytes(32)
        self._header_mac = hashlib.blake2s(key=memo_key, person=b"header")
        self._key_mac = hashlib.blake2s(key=memo_key, person=b"key")
        self._token_mac = hashlib.blake2s(key=memo_key, person=b"token")
        self._counter = 0
        self._versions: dict[str, int] = {}
        self._floor = 0
        #: True while the change stream is connected and heard from.
        self.stream_healthy = False
        self._last_heard = 0.0
        #: The stream's position, sent back as ``Last-Event-ID`` on reconnection.
        self.last_event_id: str | None = None

    def __repr__(self) -> str:
        return f"RemoteAuthority({self.service_url!r}, key_id={self.key_id!r}, key_secret='***')"

    # -- what the middleware calls ------------------------------------------------------

    def bind(self, *, scopes: Sequence[str], observer: AuthObserver | None) -> None:
        """Called by the middleware: the scopes it grants every key, and its observer."""
        self._granted = tuple(scopes)
        self._observer = observer

    def header_memo(self, raw: bytes) -> bytes:
        """The memo key of an ``Authorization`` header as received."""
        mac = self._header_mac.copy()
        mac.update(raw)
        return mac.digest()

    def warm(self, memo: bytes, client: Any) -> ApiKeyUser | None:
        """Who the credentials under ``memo`` belong to, when verified recently enough and
        unchanged since; None when the service must be asked. No network call."""
        warm = self._warm.get(memo)
        if warm is None:
            return None
        user, version, checked_at, valid_until, allow_list = warm
        now = self.timer()
        if not self._stream_is_live(now):
            valid_until = min(valid_until, checked_at + self.stale_after)
        if valid_until > now and version == self._version(user.key.key_id):
            if allow_list is not None and not allow_list.allows(client):
                raise AuthenticationRefused(errors.IP_NOT_ALLOWED)
            if self._observer is not None:
                self._observer.on_authenticated(warm=True)
            return user
        self._warm.pop(memo, None)
        return None

    async def authenticate(
        self, credentials: Credentials, client: Any, header_memo: bytes | None = None
    ) -> ApiKeyUser:
        """Who the credentials belong to, asking the service unless cached; or raise
        AuthenticationRefused (503 when the service gives no verdict)."""
        bearer = isinstance(credentials, BearerCredentials)
        if isinstance(credentials, BearerCredentials):
            mac = self._token_mac.copy()
            mac.update(credentials.token.encode("utf-8", "surrogatepass"))
            body: dict[str, Any] = {"token": credentials.token}
        else:
            mac = self._key_mac.copy()
            data = f"{credentials.key_id}:{credentials.key_secret}"
            mac.update(data.encode("utf-8", "surrogatepass"))
            body = {"key_id": credentials.key_id, "key_secret": credentials.key_secret}
        memo = mac.digest()
        user = self.warm(memo, client)
        if user is not None:
            if header_memo is not None:
                self._remember(header_memo, self._warm[memo])
            return user
        host = client_host(client)
        if host != "unknown":
            body["client_ip"] = host
        counter = self._counter
        checked_at = self.timer()
        try:
            answer = await self._verify(body)
        except _Unreachable:
            raise AuthenticationRefused(self._unavailable) from None
        code = answer.get("code")
        if code != "VALID" or not isinstance(answer.get("key"), dict):
            raise AuthenticationRefused(self._refusal(answer, bearer=bearer))
        record = RemoteKeyRecord.from_json(answer["key"])
        user = ApiKeyUser(record, self._granted)
        allow_list = self._allow_lists.get(record.allowed_cidrs)
        ttl = min(float(answer.get("cache_ttl") or 0), self.max_cache_ttl)
        # A change announced while the service was answering may postdate the answer: this
        # request has it, nothing else does.
        if ttl > 0 and counter == self._counter:
            entry = (user, self._version(record.key_id), checked_at, checked_at + ttl, allow_list)
            self._remember(memo, entry)
            if header_memo is not None:
                self._remember(header_memo, entry)
        if self._observer is not None:
            self._observer.on_authenticated(warm=False)
        return user

    async def key_changed(self, key_id: str) -> None:
        """Forget what is cached for ``key_id`` (the stream calls it on each change)."""
        self._counter += 1
        self._versions[key_id] = self._counter

    def all_keys_changed(self) -> None:
        """Forget everything cached."""
        self._counter += 1
        self._floor = self._counter
        self._versions.clear()
        self._warm.clear()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Follow the change stream while inside; close the connections at exit."""
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._follow_changes)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()
        self.stream_healthy = False
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- the verification call ----------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.service_url,
                auth=self._auth,
                transport=self._transport,
                timeout=self.timeout,
                trust_env=False,
            )
        return self._client

    async def _verify(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._http().post(VERIFY_PATH, json=body)
        except httpx.HTTPError as exc:
            logger.warning("the key service is unreachable (%s)", type(exc).__name__)
            raise _Unreachable() from None
        if response.status_code != 200:
            # Our own key refused, or the service failing: no verdict, so no pass.
            level = logging.ERROR if response.status_code in (401, 403) else logging.WARNING
            logger.log(level, "the key service answered %s to a verification", response.status_code)
            raise _Unreachable()
        try:
            answer = response.json()
        except ValueError:
            raise _Unreachable() from None
        if not isinstance(answer, dict):
            raise _Unreachable()
        return answer

    def _refusal(self, answer: dict[str, Any], *, bearer: bool) -> Refusal:
        code = answer.get("code")
        if code == "THROTTLED":
            retry_after = answer.get("retry_after")
            seconds = str(retry_after) if isinstance(retry_after, int) else "60"
            # The key's own rate limit or quota, applied by the service at verification.
            throttle = _THROTTLES.get(answer.get("reason"), errors.TOO_MANY_ATTEMPTS)
            return throttle.with_headers(Retry_After=seconds)
        reason = answer.get("reason")
        if isinstance(reason, str) and reason in _REFUSALS:
            return _REFUSALS[reason]
        if code == "EXPIRED" and bearer:
            return errors.TOKEN_EXPIRED
        if isinstance(code, str) and code in _BY_CODE:
            return _BY_CODE[code]
        return errors.INVALID_TOKEN if bearer else errors.INVALID_CREDENTIALS

    # -- the change stream --------------------------------------------------------------

    def _stream_is_live(self, now: float) -> bool:
        return self.stream_healthy and now - self._last_heard < SILENCE_SECONDS

    async def _follow_changes(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._read_stream()
            # Whatever broke it, the stream is retried: never the app's lifespan brought down.
            except Exception as exc:
                if self.stream_healthy:
                    logger.warning("the change stream is down (%s)", type(exc).__name__)
            if self.stream_healthy:
                backoff = 0.1  # it had been up: the first retry comes soon
            self.stream_healthy = False
            # Jittered, so that the apps of a fleet do not all come back at once.
            await anyio.sleep(backoff * (0.5 + secrets.randbelow(1000) / 1000))
            backoff = min(backoff * 2, _MAX_BACKOFF)

    async def _read_stream(self) -> None:
        headers = {"Accept": "text/event-stream"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        timeout = httpx.Timeout(self.timeout, read=SILENCE_SECONDS)
        async with self._http().stream(
            "GET", CHANGES_PATH, headers=headers, timeout=timeout
        ) as response:
            if response.status_code != 200:
                logger.error("the key service refused the change stream (%s)", response.status_code)
                raise _Unreachable()
            event, data, event_id = "message", "", None
            async for line in response.aiter_lines():
                self._last_heard = self.timer()
                if line == "":
                    if event_id is not None:
                        self.last_event_id = event_id
                    if data:
                        await self._apply(event, json.loads(data))
                    event, data, event_id = "message", "", None
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "event":
                    event = value
                elif name == "data":
                    data = value if not data else data + "\n" + value
                elif name == "id":
                    event_id = value

    async def _apply(self, event: str, data: Any) -> None:
        if event == "ready":
            if not (isinstance(data, dict) and data.get("resumed") is True):
                # Whatever changed before this connection is unknown: check everything again.
                self.all_keys_changed()
            self.stream_healthy = True
            self._last_heard = self.timer()
            logger.info("following key changes")
        elif event == "key_changed" and isinstance(data, dict) and data.get("key_id"):
            await self.key_changed(str(data["key_id"]))
        elif event in ("keys_changed", "reset"):
            self.all_keys_changed()

    # -- the memo -------------------------------------------------------------------------

    def _version(self, key_id: str) -> int:
        return max(self._versions.get(key_id, 0), self._floor)

    def _remember(self, memo: bytes, warm: _Warm) -> None:
        if len(self._warm) >= _WARM_ENTRIES:
            del self._warm[next(iter(self._warm))]
        self._warm[memo] = warm
