"""The ASGI middleware: authenticates each request by API key and serves the token endpoint."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import datetime

from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wfa_auth import _errors as errors
from wfa_auth._authenticator import Authenticator, client_host, utcnow
from wfa_auth._cache import TTLCache
from wfa_auth._calls import OUTCOME_OF_ERROR, SCOPE_OUTCOME, SUCCESS, CallRecorder
from wfa_auth._config import Caching, Metering, Throttling, Tokens
from wfa_auth._counters import MemoryCounterStore
from wfa_auth._errors import AuthenticationRefused, Refusal
from wfa_auth._extractors import HeaderCredentialExtractor, sole_authorization
from wfa_auth._hashing import Argon2Verifier
from wfa_auth._json import loads_json
from wfa_auth._limits import Headers, Limiter
from wfa_auth._memory import MemoryTokenStore
from wfa_auth._policies import KeyLimits
from wfa_auth._principal import ApiKeyUser
from wfa_auth._responses import JSONErrorResponder, send_json
from wfa_auth._usage import UsageRecorder
from wfa_auth.base import (
    AuthObserver,
    Authority,
    Cache,
    CredentialExtractor,
    ErrorResponder,
    KeyCredentials,
    KeyStore,
    MalformedCredentials,
    SecretVerifier,
    TokenStore,
    Usage,
)

logger = logging.getLogger("wfa_auth")

#: The scope entry that holds the authenticated :class:`~wfa_auth.base.KeyRecord`.
SCOPE_KEY = "wfa_auth.key"
# Frozen, so one default instance serves every middleware.
_TOKENS, _CACHING, _THROTTLING = Tokens(), Caching(), Throttling()
_METERING = Metering()


class _NoKeyStore:
    """The store of a middleware whose :class:`~wfa_auth.base.Authority` checks keys (and
    records their use) elsewhere."""

    async def get_key(self, key_id: str) -> None:
        return None

    async def replace_secret_hash(self, key_id: str, old_hash: str, new_hash: str) -> None:
        return None

    async def record_usage(self, last_used: Mapping[str, Usage]) -> None:
        return None


def _seconds(clock: Callable[[], datetime]) -> Callable[[], float]:
    """``clock`` as POSIX seconds."""
    return lambda: clock().timestamp()


def _with_headers(send: Send, headers: Headers) -> Send:
    """``send`` adding ``headers`` to the response's start (or a websocket's accept)."""

    # A plain function returning send's awaitable: no coroutine of its own per message;
    # send and headers as defaults rather than a closure's cells: none to make per call.
    def send_with_headers(
        message: Message, send: Send = send, headers: Headers = headers
    ) -> Awaitable[None]:
        if message["type"] in ("http.response.start", "websocket.accept"):
            # A copy: the app's message and its header list stay as the app made them.
            message = {**message}
            raw = message.get("headers", ())
            message["headers"] = raw + headers if type(raw) is list else [*raw, *headers]
        return send(message)

    return send_with_headers


def route_path(scope: Scope) -> str:
    """The request path below the mount point (``scope["root_path"]``), as Starlette routes it."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        if path == root_path:
            return ""
        if path[len(root_path)] == "/":
            return path[len(root_path) :]
    return path


class ApiKeyAuthMiddleware:
    """Authenticates every HTTP and websocket request by API key, in front of any ASGI app.

    Credentials come as ``Authorization: Bearer <token>`` (a token from the token endpoint),
    ``Authorization: Basic base64(key_id:key_secret)``, or ``X-API-Key-ID`` and
    ``X-API-Key-Secret``. On success the scope carries ``user`` (an
    :class:`~wfa_auth.ApiKeyUser`), ``auth`` (``AuthCredentials`` with ``scopes``, by default
    ``["authenticated"]``, followed by the key's own scopes, so that Starlette's
    ``@requires("workflows:read")`` and :func:`~wfa_auth.requires_scope` work) and
    ``wfa_auth.key`` (the key record); otherwise the request never reaches the app. A key
    with a non-empty ``allowed_cidrs`` is refused 403 ``ip_not_allowed`` from any other client
    address (the scope's ``client``: behind a proxy, have the server set it from the
    forwarded header), and a previous secret is accepted until its grace period ends.

    Options come grouped: ``tokens`` (:class:`~wfa_auth.Tokens`, the token exchange at
    ``POST tokens.path``), ``caching`` (:class:`~wfa_auth.Caching`) and ``throttling``
    (:class:`~wfa_auth.Throttling`). When a store cannot be reached, requests are answered
    503 with ``Retry-After``, never let through. ``observer`` is told of every outcome.

    ``public_paths`` pass without credentials and without any check (credentials they carry
    are ignored; ``request.user`` is unauthenticated): health checks, API docs. Each is a
    path relative to the mount point (as :func:`route_path` gives it) matched exactly, or,
    ending in ``*``, a prefix: ``"/docs*"`` matches ``/docs``, ``/docs/`` and
    ``/docs/openapi.json``. A prefix never matches a path with a ``.`` or ``..`` segment, in
    case an app behind the middleware normalizes paths. ``allow_anonymous`` lets requests
    without credentials through everywhere (bad credentials are still refused).

    Key records are cached ``caching.record_ttl`` seconds: call :meth:`key_changed` after a
    key changes (or :meth:`all_keys_changed`); otherwise a change made elsewhere is seen once
    the cached record expires. ``organization_id`` restricts the middleware to the keys of one
    organization (any other key is simply invalid). ``clock`` (wall time; None: the
    system's) and ``timer`` (monotonic seconds) are for tests.

    Instead of a ``store``, an ``authority`` (:class:`wfa_auth.remote.RemoteAuthority`) may
    check the credentials: keys issued by a ``wfa-keys`` service, verified through it and
    cached here. The answers, ``request.user``, ``request.auth`` and ``requires_scope`` are
    the same; the token endpoint is the service's (this app serves none).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: KeyStore | None = None,
        authority: Authority | None = None,
        token_store: TokenStore | None = None,
        verifier: SecretVerifier | None = None,
        extractor: CredentialExtractor | None = None,
        cache: Cache | None = None,
        error_responder: ErrorResponder | None = None,
        tokens: Tokens = _TOKENS,
        caching: Caching = _CACHING,
        throttling: Throttling = _THROTTLING,
        observer: AuthObserver | None = None,
        metering: Metering = _METERING,
        public_paths: Sequence[str] = (),
        allow_anonymous: bool = False,
        organization_id: str | None = None,
        scopes: Sequence[str] = ("authenticated",),
        clock: Callable[[], datetime] | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        if (store is None) == (authority is None):
            raise TypeError("give the middleware a store or an authority (one of them)")
        # Rate limits, quotas and call analytics read the wall time on every call: the
        # system's float clock unless one is injected (a datetime a call costs far more).
        if clock is None or clock is utcnow:
            clock, wall = utcnow, time.time
        else:
            wall = _seconds(clock)
        self.app = app
        #: Checks credentials in place of ``store`` (a remote service), when given.
        self.authority = authority
        if authority is not None:
            authority.bind(scopes=scopes, observer=observer)
            # The service issues the tokens: this app has no token endpoint of its own.
            tokens = Tokens(path=None, ttl=tokens.ttl, max_per_key=tokens.max_per_key)
            store = _NoKeyStore()
        assert store is not None
        self.verifier: SecretVerifier = verifier or Argon2Verifier()
        self.extractor: CredentialExtractor = extractor or HeaderCredentialExtractor()
        # Only the default extractor is known to read credentials from the Authorization
        # header alone, whenever it is the sole credential header (see sole_authorization).
        self._by_header = type(self.extractor) is HeaderCredentialExtractor
        self.error_responder: ErrorResponder = error_responder or JSONErrorResponder()
        self.tokens = tokens
        self.token_path = tokens.path
        self.observer = observer
        self._public_exact = frozenset(p for p in public_paths if not p.endswith("*"))
        self._public_prefixes = tuple(p[:-1] for p in public_paths if p.endswith("*"))
        self._has_public_paths = bool(public_paths)
        # A path below the mount point ends with it: most paths are told apart from the exact
        # public paths by the full path's end alone, without working out the route path.
        self._public_ends = tuple(self._public_exact)
        self.allow_anonymous = allow_anonymous
        self.usage = UsageRecorder(store, interval=caching.usage_interval, clock=timer, now=clock)
        #: How many :meth:`running` contexts are entered: while one is, its tasks write the
        #: batches and a request need not check whether one is due.
        self._runs = 0
        self.authenticator = Authenticator(
            store=store,
            token_store=token_store if token_store is not None else MemoryTokenStore(),
            verifier=self.verifier,
            cache=cache if cache is not None else TTLCache(max_entries=caching.max_warm_entries),
            usage=self.usage,
            tokens=tokens,
            caching=caching,
            throttling=throttling,
            observer=observer,
            organization_id=organization_id,
            clock=clock,
            scopes=scopes,
            timer=timer,
        )
        # Rate limits, quotas and call analytics (see Metering); wall time, shared by hosts.
        self.limiter = Limiter(
            metering.counters if metering.counters is not None else MemoryCounterStore(),
            unavailable=errors.SERVICE_UNAVAILABLE.with_headers(
                Retry_After=str(throttling.retry_after_unavailable)
            ),
            clock=wall,
            idle=metering.sync_interval,
            interval=metering.sync_interval,
        )
        self.calls = (
            CallRecorder(metering.calls, interval=metering.flush_interval, clock=wall)
            if metering.calls is not None
            else None
        )

    async def key_changed(self, key_id: str) -> None:
        """Forget what is cached for ``key_id``; call it after disabling, regenerating or
        deleting the key. A lookup already running when it is called does not re-cache the
        old record, a request whose check overlapped the call checks again, and a cached
        token of the key is looked up in the token store again (so a token deleted by
        another process is refused once that process's change notification arrives)."""
        await self.authenticator.key_changed(key_id)
        if self.authority is not None:
            await self.authority.key_changed(key_id)

    def all_keys_changed(self) -> None:
        """Forget everything cached about every key and token (a user's deactivation or role
        change, a subscription change, or a lost change feed): each is checked again."""
        self.authenticator.all_keys_changed()
        if self.authority is not None:
            self.authority.all_keys_changed()

    def set_record_cache_ttl(self, seconds: float) -> None:
        """How long records read from now on are trusted without another lookup.

        A process that learns of every change (a change feed) can trust them for long; one
        that lost its feed shortens this so that changes made elsewhere are seen soon.
        """
        self.authenticator.set_record_cache_ttl(seconds)

    async def flush_usage(self) -> None:
        """Write the pending last-used times and call counts now, and give back unused
        rate-limit units (done by itself at server shutdown)."""
        await self.usage.flush()
        if self.calls is not None:
            await self.calls.flush()
        await self.limiter.sync(everything=True)

    def running(self) -> AbstractAsyncContextManager[None]:
        """Runs the background work while entered: each key's last use is written when its
        interval ends, and everything pending at exit.

        The middleware enters it by itself when it receives the lifespan events. Starlette's
        ``Mount`` passes no lifespan to the mounted app: then enter it from the app's own
        lifespan (``async with api.running(): yield``), before the database closes. Without
        it, due writes are made after a later response, and pending ones are lost at exit.
        With an ``authority``, its own work (the change stream) runs too.
        """
        return self._run_all()

    @asynccontextmanager
    async def _run_all(self) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self.usage.run())
            await stack.enter_async_context(self.limiter.run())
            if self.calls is not None:
                await stack.enter_async_context(self.calls.run())
            if self.authority is not None:
                await stack.enter_async_context(self.authority.running())
            self._runs += 1
            try:
                yield
            finally:
                self._runs -= 1

    def _is_public(self, scope: Scope) -> bool:
        path = route_path(scope)
        if path in self._public_exact:
            return True
        if path.startswith(self._public_prefixes):
            return not any(segment in (".", "..") for segment in path.split("/"))
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            async with self.running():
                await self.app(scope, self._lifespan_receive(receive), send)
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if (
            self.token_path is not None
            and scope["type"] == "http"
            and scope["path"].endswith(self.token_path)
            and route_path(scope) == self.token_path
        ):
            await self._token_endpoint(scope, receive, send)
            return
        if (
            self._has_public_paths
            and (self._public_prefixes or scope["path"].endswith(self._public_ends))
            and self._is_public(scope)
        ):
            scope["user"] = UnauthenticatedUser()
            scope["auth"] = AuthCredentials()
            await self.app(scope, receive, send)
            return
        if self.authority is not None:
            await self._call_with(self.authority, scope, receive, send)
            return
        # Inlined rather than a method of its own: this is the hot path of every request.
        try:
            user: ApiKeyUser | None = None
            memo: bytes | None = None
            if self._by_header:
                # Credentials verified before are found by their header as received, unparsed:
                # the same bytes the extractor would read them from.
                raw = sole_authorization(scope)
                if raw is not None:
                    memo = self.authenticator.header_memo(raw)
                    user = self.authenticator.warm(memo, scope.get("client"))
            if user is None:
                try:
                    credentials = self.extractor.extract(scope)
                except MalformedCredentials as exc:
                    # Our own messages, written without any of the presented values.
                    raise AuthenticationRefused(
                        errors.INVALID_REQUEST.with_message(str(exc).capitalize() + ".")
                    ) from None
                if credentials is not None:
                    user = await self.authenticator.authenticate(
                        credentials, scope.get("client"), memo
                    )
                elif not self.allow_anonymous:
                    raise AuthenticationRefused(errors.MISSING_CREDENTIALS)
            if user is not None and user.limits is not None:
                # The warm path of a limited key: no await unless its lease has run out.
                admitted = self.limiter.admit(user.limits)
                if type(admitted) is list:
                    send = _with_headers(send, admitted)
                elif admitted is None:
                    send = await self._acquire(user, user.limits, send)
                elif isinstance(admitted, Refusal):
                    raise AuthenticationRefused(admitted, user.key)
        except AuthenticationRefused as refused:
            self._count_refused(refused)
            await self._refuse(scope, receive, send, refused.refusal)
            return
        if user is None:
            scope["user"] = UnauthenticatedUser()
            scope["auth"] = AuthCredentials()
        else:
            scope["user"] = user
            scope["auth"] = user.auth
            scope[SCOPE_KEY] = user.key
        await self.app(scope, receive, send)
        calls = self.calls
        if calls is not None and user is not None:
            outcome = scope.get(SCOPE_OUTCOME)
            calls.count(
                user.key.key_id,
                user.key.organization_id,
                SUCCESS if outcome is None else OUTCOME_OF_ERROR.get(outcome, SUCCESS),
            )
        if not self._runs:
            # No timer task runs (no lifespan reached us): write after the response instead.
            await self._write_due()

    async def _write_due(self) -> None:
        """Without a lifespan, due batches are written after a response."""
        if self.usage.write_is_due():
            await self.usage.write_due()
        if self.calls is not None and self.calls.flush_is_due():
            await self.calls.flush()
        if self.limiter.sync_is_due():
            await self.limiter.sync()

    async def _acquire(self, user: ApiKeyUser, limits: KeyLimits, send: Send) -> Send:
        """When the key's leases have run out (``admit`` answered None): take more from the
        store, then ``send`` adding the rate-limit headers, or raise the key's refusal."""
        admitted = await self.limiter.acquire(limits)
        if isinstance(admitted, Refusal):
            raise AuthenticationRefused(admitted, user.key)
        return _with_headers(send, admitted)

    def _count_refused(self, refused: AuthenticationRefused) -> None:
        key = refused.key
        if self.calls is not None and key is not None:
            outcome = OUTCOME_OF_ERROR.get(refused.refusal.error)
            if outcome is not None:
                self.calls.count(key.key_id, key.organization_id, outcome)

    async def _call_with(
        self, authority: Authority, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """:meth:`__call__` with the credentials checked by ``authority``."""
        try:
            user: ApiKeyUser | None = None
            memo: bytes | None = None
            if self._by_header:
                raw = sole_authorization(scope)
                if raw is not None:
                    memo = authority.header_memo(raw)
                    user = authority.warm(memo, scope.get("client"))
            if user is None:
                try:
                    credentials = self.extractor.extract(scope)
                except MalformedCredentials as exc:
                    raise AuthenticationRefused(
                        errors.INVALID_REQUEST.with_message(str(exc).capitalize() + ".")
                    ) from None
                if credentials is not None:
                    user = await authority.authenticate(credentials, scope.get("client"), memo)
                elif not self.allow_anonymous:
                    raise AuthenticationRefused(errors.MISSING_CREDENTIALS)
        except AuthenticationRefused as refused:
            await self._refuse(scope, receive, send, refused.refusal)
            return
        if user is None:
            scope["user"] = UnauthenticatedUser()
            scope["auth"] = AuthCredentials()
        else:
            scope["user"] = user
            scope["auth"] = user.auth
            scope[SCOPE_KEY] = user.key
        await self.app(scope, receive, send)

    async def _token_endpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await self._refuse(scope, receive, send, errors.METHOD_NOT_ALLOWED)
            return
        body = b""
        more_body = True
        while more_body:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.tokens.max_request_bytes:
                await self._refuse(scope, receive, send, errors.TOKEN_REQUEST_TOO_LARGE)
                return
            more_body = message.get("more_body", False)
        try:
            payload = loads_json(body)
        except ValueError:  # not UTF-8, not JSON, too deep, or a lone surrogate: a bad request
            payload = None
        key_id = payload.get("key_id") if isinstance(payload, dict) else None
        key_secret = payload.get("key_secret") if isinstance(payload, dict) else None
        if not (isinstance(key_id, str) and isinstance(key_secret, str)):
            await self._refuse(scope, receive, send, errors.BAD_TOKEN_REQUEST)
            return
        try:
            user = await self.authenticator.authenticate(
                KeyCredentials(key_id, key_secret), scope.get("client")
            )
            token = await self.authenticator.issue_token(user)
        except AuthenticationRefused as refused:
            self._count_refused(refused)
            await self._refuse(scope, receive, send, refused.refusal)
            return
        logger.info("issued an access token for key %s", user.key.key_id)
        body_out = {"access_token": token, "token_type": "Bearer", "expires_in": self.tokens.ttl}
        await send_json(send, 200, body_out, {"Pragma": "no-cache"})
        if self.usage.write_is_due():
            await self.usage.write_due()

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, refusal: Refusal) -> None:
        if self.observer is not None:
            self.observer.on_refused(refusal.error)
        # DEBUG: under a flood, one line per refusal would cost more than the refusal itself;
        # throttling and store failures are logged once each at WARNING/ERROR where they happen.
        logger.debug(
            "refused %s %s from %s: %s",
            scope.get("method", "WEBSOCKET"),
            scope["path"],
            client_host(scope.get("client")),
            refusal.error,
        )
        await self.error_responder(
            scope,
            receive,
            send,
            status=refusal.status,
            error=refusal.error,
            message=refusal.message,
            headers=refusal.headers,
        )

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                # Before the app's own shutdown, which may close the database.
                await self.flush_usage()
            return message

        return wrapped
