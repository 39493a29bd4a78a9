"""FastAPI integration: a dependency that returns the caller's key and shows the auth in OpenAPI.

Needs ``pip install 'wfa-auth[fastapi]'``; FastAPI is imported here only, never by the rest of
``wfa_auth``. Two ways to use it:

- **Dependency only** (no middleware mounted): ``auth = ApiKeySecurity(store=my_store)``.
  Routes that take ``Security(auth)`` need an API key; every other route, ``/docs`` and
  ``/openapi.json`` included, stays public. ``auth.token_router`` serves the token exchange
  and ``auth.lifespan`` writes the pending last-used times at shutdown.
- **Behind a mounted** :class:`~wfa_auth.ApiKeyAuthMiddleware`: ``ApiKeySecurity()`` without
  a store returns the key the middleware authenticated, and only declares the schemes.

Either way the check is the middleware's own (same extractor, cache, throttling, token store,
refusal codes): the dependency runs an :class:`~wfa_auth.ApiKeyAuthMiddleware` in front of an
app that does nothing, rather than a second implementation of the rules.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, HTTPException, Request, WebSocketException
from fastapi.openapi.models import APIKey, APIKeyIn, HTTPBase, HTTPBearer
from fastapi.security import SecurityScopes
from fastapi.security.base import SecurityBase
from starlette.authentication import AuthCredentials
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from wfa_auth import (
    SCOPE_KEY,
    ApiKeyAuthMiddleware,
    ApiKeyUser,
    Authority,
    KeyRecord,
    KeyStore,
    insufficient_scope,
)

__all__ = ["ApiKeySecurity"]

_WEBSOCKET_POLICY_VIOLATION = 1008
_CHALLENGE = 'Bearer realm="Workflow Automation API"'
_MISSING = {
    "error": "missing_credentials",
    "message": "This call needs an API key: send a Bearer access token, or the Key ID and "
    "Key Secret.",
}


class _DeclaredScheme(SecurityBase):
    """An OpenAPI security scheme that only declares itself: the check is the middleware's.

    FastAPI's own ``HTTPBasic`` and friends parse the headers again and answer malformed
    ones with their own 401; these let every request through to :class:`ApiKeySecurity`.
    """

    def __init__(self, model: HTTPBase | APIKey, scheme_name: str) -> None:
        self.model = model
        self.scheme_name = scheme_name

    async def __call__(self) -> None:
        return None


_BASIC = _DeclaredScheme(
    HTTPBase(scheme="basic", description="The Key ID as user name, the Key Secret as password."),
    "WfaKeyBasic",
)
_KEY_ID = _DeclaredScheme(
    APIKey.model_validate(
        {
            "in": APIKeyIn.header,
            "name": "X-API-Key-ID",
            "description": "The Key ID; send X-API-Key-Secret with it.",
        }
    ),
    "WfaKeyId",
)
_KEY_SECRET = _DeclaredScheme(
    APIKey.model_validate(
        {
            "in": APIKeyIn.header,
            "name": "X-API-Key-Secret",
            "description": "The Key Secret; send X-API-Key-ID with it.",
        }
    ),
    "WfaKeySecret",
)
_BEARER = _DeclaredScheme(
    HTTPBearer(
        description="An access token from POST /v1/auth/api-key/token (the token exchange).",
    ),
    "WfaKeyBearer",
)

_TOKEN_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["key_id", "key_secret"],
                "properties": {"key_id": {"type": "string"}, "key_secret": {"type": "string"}},
            }
        }
    },
}
_TOKEN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An access token for the ``Authorization: Bearer`` header.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["access_token", "token_type", "expires_in"],
                    "properties": {
                        "access_token": {"type": "string"},
                        "token_type": {"type": "string", "enum": ["Bearer"]},
                        "expires_in": {"type": "integer"},
                    },
                }
            }
        },
    },
    400: {"description": "The body is not the JSON object above."},
    401: {"description": "The Key ID or the Key Secret is not valid, or the key is unusable."},
    403: {
        "description": "The organization does not subscribe to Workflow Automation, or the "
        "client address is outside the key's allow-list (``ip_not_allowed``)."
    },
    429: {"description": "Too many failed attempts; ``Retry-After`` says when to try again."},
    503: {"description": "Authentication is unavailable for a moment."},
}


async def _reached(scope: Scope, receive: Receive, send: Send) -> None:
    """The app behind the dependency's middleware: reaching it means the key was accepted."""


async def _no_body() -> Message:
    # The middleware never reads a body to authenticate; the request's own stays unread.
    return {"type": "http.disconnect"}


class ApiKeySecurity:
    """A FastAPI dependency: the caller's :class:`~wfa_auth.KeyRecord`, or a refusal.

    Use it with ``Security(auth)`` (or ``Security(auth, scopes=["workflows:read"])`` to also
    require scopes: the key's own, or the middleware's ``scopes`` option granted to every key,
    as in ``request.auth.scopes``; a missing one answers 403 ``insufficient_scope`` naming it,
    as :func:`~wfa_auth.requires_scope` does).
    It declares the four ways to authenticate as OpenAPI security schemes (HTTP Basic, the
    ``X-API-Key-ID``/``X-API-Key-Secret`` headers, HTTP Bearer), so ``/docs`` offers them.

    With ``store`` (or ``authority``: keys checked by a ``wfa-keys`` service through
    :class:`wfa_auth.remote.RemoteAuthority`), it authenticates by itself through an
    :class:`~wfa_auth.ApiKeyAuthMiddleware` built with it and ``options`` (any option of the
    middleware); without, it expects that middleware mounted in front of the app. Either way,
    after a success ``request.user`` and ``request.auth`` are set as the middleware sets
    them. Refusals are
    FastAPI's ``HTTPException`` with the middleware's status, headers and
    ``{"error": ..., "message": ...}`` as ``detail``; on a websocket, a close with 1008.
    """

    def __init__(
        self, *, store: KeyStore | None = None, authority: Authority | None = None, **options: Any
    ) -> None:
        if store is None and authority is None and options:
            raise TypeError("middleware options need a store: ApiKeySecurity(store=..., ...)")
        #: The middleware that checks credentials for this dependency (None when one is
        #: mounted in front of the app instead): call its ``key_changed`` after changing a key.
        self.middleware: ApiKeyAuthMiddleware | None = None
        if store is not None or authority is not None:
            self.middleware = ApiKeyAuthMiddleware(
                _reached, store=store, authority=authority, **options
            )

    def __repr__(self) -> str:
        mode = "mounted middleware" if self.middleware is None else "own middleware"
        return f"ApiKeySecurity({mode})"

    async def __call__(
        self,
        connection: HTTPConnection,
        security_scopes: SecurityScopes,
        _basic: Annotated[None, Depends(_BASIC)],
        _key_id: Annotated[None, Depends(_KEY_ID)],
        _key_secret: Annotated[None, Depends(_KEY_SECRET)],
        _bearer: Annotated[None, Depends(_BEARER)],
    ) -> KeyRecord:
        """The authenticated key; raises the refusal otherwise."""
        scope = connection.scope
        # Set by the middleware in front, or by this dependency earlier in the same request.
        key: KeyRecord | None = scope.get(SCOPE_KEY)
        if key is None:
            if self.middleware is None:
                _refuse(scope, 401, _MISSING, {"WWW-Authenticate": _CHALLENGE})
            key = await self._authenticate(scope)
        auth = scope.get("auth")
        granted = auth.scopes if isinstance(auth, AuthCredentials) else []
        missing = [name for name in security_scopes.scopes if name not in granted]
        if missing:
            # The body requires_scope answers with, so both integrations read alike.
            detail = json.loads(bytes(insufficient_scope(missing[0]).body))
            challenge = f'{_CHALLENGE}, error="insufficient_scope", scope="{" ".join(missing)}"'
            _refuse(scope, 403, detail, {"WWW-Authenticate": challenge})
        return key

    async def _authenticate(self, scope: Scope) -> KeyRecord:
        assert self.middleware is not None
        # A copy: the middleware writes user, auth and the key into it only when it accepts.
        trial = dict(scope)
        sent: list[Message] = []

        async def capture(message: Message) -> None:
            sent.append(message)

        await self.middleware(trial, _no_body, capture)
        key: KeyRecord | None = trial.get(SCOPE_KEY)
        if key is not None and not sent:
            scope["user"] = trial.get("user", ApiKeyUser(key))
            scope["auth"] = trial.get("auth", AuthCredentials())
            scope[SCOPE_KEY] = key
            return key
        _raise_captured(scope, sent)

    @asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        """``FastAPI(lifespan=auth.lifespan)``: writes pending last-used times at shutdown;
        with an ``authority`` (:class:`wfa_auth.remote.RemoteAuthority`), follows its change
        stream while the app runs.

        A mounted middleware does this by itself; this is for the dependency-only use.
        """
        if self.middleware is not None and self.middleware.authority is not None:
            async with self.middleware.running():
                yield
            return
        yield
        if self.middleware is not None:
            await self.middleware.flush_usage()

    @property
    def token_router(self) -> APIRouter:
        """A router with ``POST /v1/auth/api-key/token`` (the middleware's ``token_path``).

        The exchange is the middleware's own; the route is there so that it is reachable
        without the middleware mounted, and listed in OpenAPI. Include it without
        ``Security(auth)``: the exchange is how clients without a token get one.
        """
        middleware = self.middleware
        if middleware is None or middleware.token_path is None:
            raise RuntimeError("token_router needs ApiKeySecurity(store=...) with a token_path")
        token_path = middleware.token_path

        async def exchange(request: Request) -> Response:
            return _Forwarded(middleware, token_path)

        router = APIRouter()
        router.add_api_route(
            token_path,
            exchange,
            methods=["POST"],
            summary="Exchange a Key ID and Key Secret for an access token",
            response_class=Response,
            responses=_TOKEN_RESPONSES,
            openapi_extra={"requestBody": _TOKEN_REQUEST_BODY},
            tags=["authentication"],
        )
        return router


class _Forwarded(Response):
    """Hands the whole request (its unread body included) to the middleware's token exchange."""

    def __init__(self, middleware: ApiKeyAuthMiddleware, token_path: str) -> None:
        super().__init__()
        self._middleware = middleware
        self._token_path = token_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Seen from the middleware, the request is at its token path wherever the router is
        # included (a prefix, a mount), so it always takes it for the token exchange.
        await self._middleware({**scope, "path": self._token_path, "root_path": ""}, receive, send)


def _raise_captured(scope: Scope, sent: Sequence[Message]) -> NoReturn:
    """Raise what the middleware answered (status, headers, JSON body) as FastAPI's refusal."""
    status = 401
    headers: dict[str, str] = {}
    body = b""
    for message in sent:
        if message["type"] == "http.response.start":
            status = message["status"]
            for name, value in message.get("headers", ()):
                header = name.decode("latin-1").lower()
                if header in ("www-authenticate", "retry-after", "allow"):
                    headers[header] = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")
    detail: Any = _MISSING
    if body:
        try:
            detail = json.loads(body)
        except ValueError:
            detail = body.decode("utf-8", "replace")
    elif not sent:
        # Let through without a key (``allow_anonymous``): this route needs one all the same.
        headers = {"www-authenticate": _CHALLENGE}
    _refuse(scope, status, detail, headers)


def _refuse(scope: Scope, status: int, detail: Any, headers: dict[str, str]) -> NoReturn:
    if scope["type"] == "websocket":
        raise WebSocketException(code=_WEBSOCKET_POLICY_VIOLATION)
    raise HTTPException(status_code=status, detail=detail, headers=headers)
