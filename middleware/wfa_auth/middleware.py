"""The ASGI middleware: authenticates each request by API key and serves the token endpoint."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wfa_auth import errors
from wfa_auth.authenticator import Authenticator, client_host, utcnow
from wfa_auth.base import (
    Cache,
    CredentialExtractor,
    ErrorResponder,
    KeyCredentials,
    KeyStore,
    MalformedCredentials,
    SecretVerifier,
    TokenStore,
)
from wfa_auth.cache import TTLCache
from wfa_auth.errors import AuthenticationRefused, Refusal
from wfa_auth.extractors import HeaderCredentialExtractor
from wfa_auth.hashing import Argon2Verifier
from wfa_auth.keyformat import is_valid_key_id, is_valid_key_secret
from wfa_auth.memory import MemoryTokenStore
from wfa_auth.responses import JSONErrorResponder, send_json
from wfa_auth.throttle import FailureLimiter
from wfa_auth.usage import UsageRecorder

logger = logging.getLogger("wfa_auth")

#: The scope entry that holds the authenticated :class:`~wfa_auth.base.KeyRecord`.
SCOPE_KEY = "wfa_auth.key"
DEFAULT_TOKEN_PATH = "/v1/auth/api-key/token"  # noqa: S105 -- a URL path


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
    :class:`~wfa_auth.principal.ApiKeyUser`), ``auth`` (``AuthCredentials(scopes)``) and
    ``wfa_auth.key`` (the key record); otherwise the request never reaches the app.

    ``POST {token_path}`` (relative to the mount point) exchanges a Key ID and Key Secret for
    an access token valid ``token_ttl`` seconds. Key records are cached ``record_cache_ttl``
    seconds: call :meth:`key_changed` after changing a key in this process; changes made by
    another process are seen once the cached record expires. When the store cannot be
    reached, requests are answered 503, never let through.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: KeyStore,
        token_store: TokenStore | None = None,
        verifier: SecretVerifier | None = None,
        extractor: CredentialExtractor | None = None,
        cache: Cache | None = None,
        error_responder: ErrorResponder | None = None,
        token_path: str | None = DEFAULT_TOKEN_PATH,
        token_ttl: int = 3600,
        record_cache_ttl: float = 5.0,
        verified_cache_ttl: float = 3600.0,
        scopes: Sequence[str] = ("authenticated",),
        allow_anonymous: bool = False,
        organization_id: str | None = None,
        max_concurrent_verifications: int = 2,
        max_failures_per_key_and_ip: int = 10,
        max_failures_per_ip: int = 100,
        failure_window: float = 300.0,
        usage_interval: float = 60.0,
        retry_after: int = 5,
        max_token_request_bytes: int = 4096,
        validate_key_id: Callable[[str], bool] = is_valid_key_id,
        validate_key_secret: Callable[[str], bool] = is_valid_key_secret,
        clock: Callable[[], datetime] = utcnow,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.verifier: SecretVerifier = verifier or Argon2Verifier()
        # Argon2Verifier keeps a dummy hash made with its own parameters; make one otherwise.
        dummy_hash = getattr(self.verifier, "dummy_hash", None)
        if not isinstance(dummy_hash, str):
            dummy_hash = self.verifier.hash("wfa-auth-dummy-secret")
        self.extractor: CredentialExtractor = extractor or HeaderCredentialExtractor()
        self.error_responder: ErrorResponder = error_responder or JSONErrorResponder()
        self.token_path = token_path
        self.token_ttl = token_ttl
        # One instance for every request: built once, as it only carries the scope names.
        self.credentials = AuthCredentials(list(scopes))
        self.allow_anonymous = allow_anonymous
        self.max_token_request_bytes = max_token_request_bytes
        self.usage = UsageRecorder(store, interval=usage_interval)
        self.authenticator = Authenticator(
            store=store,
            token_store=token_store if token_store is not None else MemoryTokenStore(),
            verifier=self.verifier,
            cache=cache if cache is not None else TTLCache(),
            dummy_hash=dummy_hash,
            usage=self.usage,
            key_limiter=FailureLimiter(limit=max_failures_per_key_and_ip, window=failure_window),
            ip_limiter=FailureLimiter(limit=max_failures_per_ip, window=failure_window),
            token_ttl=token_ttl,
            record_cache_ttl=record_cache_ttl,
            verified_cache_ttl=verified_cache_ttl,
            max_concurrent_verifications=max_concurrent_verifications,
            retry_after=retry_after,
            organization_id=organization_id,
            validate_key_id=validate_key_id,
            validate_key_secret=validate_key_secret,
            clock=clock,
            timer=timer,
        )

    async def key_changed(self, key_id: str) -> None:
        """Forget what is cached for ``key_id``; call it after disabling, regenerating or
        deleting the key. A lookup already running when it is called does not re-cache the
        old record, and a request whose check overlapped the call checks again."""
        await self.authenticator.key_changed(key_id)

    def all_keys_changed(self) -> None:
        """Forget everything cached about every key and token (a user's deactivation or role
        change, a subscription change, or a lost change feed): each is checked again."""
        self.authenticator.all_keys_changed()

    def set_record_cache_ttl(self, seconds: float) -> None:
        """How long records read from now on are trusted without another lookup.

        A process that learns of every change (a change feed) can trust them for long; one
        that lost its feed shortens this so that changes made elsewhere are seen soon.
        """
        self.authenticator.set_record_cache_ttl(seconds)

    async def flush_usage(self) -> None:
        """Write the pending last-used times now (done by itself at server shutdown)."""
        await self.usage.flush()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
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
        # Inlined rather than a method of its own: this is the hot path of every request.
        try:
            try:
                credentials = self.extractor.extract(scope)
            except MalformedCredentials as exc:
                # Our own messages, written without any of the presented values.
                raise AuthenticationRefused(
                    errors.INVALID_REQUEST.with_message(str(exc).capitalize() + ".")
                ) from None
            if credentials is not None:
                user = await self.authenticator.authenticate(credentials, scope.get("client"))
            elif self.allow_anonymous:
                user = None
            else:
                raise AuthenticationRefused(errors.MISSING_CREDENTIALS)
        except AuthenticationRefused as refused:
            await self._refuse(scope, receive, send, refused.refusal)
            return
        if user is None:
            scope["user"] = UnauthenticatedUser()
            scope["auth"] = AuthCredentials()
        else:
            scope["user"] = user
            scope["auth"] = self.credentials
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
            if len(body) > self.max_token_request_bytes:
                await self._refuse(scope, receive, send, errors.TOKEN_REQUEST_TOO_LARGE)
                return
            more_body = message.get("more_body", False)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
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
            token = await self.authenticator.issue_token(user.key)
        except AuthenticationRefused as refused:
            await self._refuse(scope, receive, send, refused.refusal)
            return
        logger.info("issued an access token for key %s", user.key.key_id)
        body_out = {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl}
        await send_json(send, 200, body_out, {"Pragma": "no-cache"})

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, refusal: Refusal) -> None:
        logger.info(
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
