"""The sample Workflow Automation API, behind the API-key middleware.

``wfa-keys serve`` mounts it under ``/api``: ``POST /api/v1/auth/api-key/token`` (served by
the middleware), ``GET /api/v1/whoami`` (any valid key), and ``GET``/``POST /api/v1/workflows``
(scopes ``workflows:read`` and ``workflows:write``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import orjson
from starlette.authentication import requires
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from wfa_auth import (
    SCOPE_KEY,
    ApiKeyAuthMiddleware,
    AuthObserver,
    CallSink,
    CounterStore,
    KeyRecord,
    Metering,
    ThrottleStore,
    Throttling,
    Tokens,
    requires_scope,
)
from wfa_keys.crypto import hasher_for
from wfa_keys.json_body import loads_json
from wfa_keys.limits import MAX_NAME_LENGTH, MAX_TOKENS_PER_KEY
from wfa_keys.models import Workflow
from wfa_keys.openapi import OPENAPI_PATH, openapi_endpoint
from wfa_keys.settings import Settings
from wfa_keys.store import TortoiseKeyStore, TortoiseTokenStore
from wfa_keys.stream import ChangeFeed, ChangeStream
from wfa_keys.verification import KeyVerification

#: The newest workflows listed by ``GET /v1/workflows``.
MAX_WORKFLOWS_LISTED = 100
_MAX_WORKFLOW_BODY = 4096


class ApiJSONResponse(Response):
    """Starlette's ``JSONResponse`` rendered by orjson: the same bytes (compact, UTF-8, no
    ASCII escapes) for the API's answers, which hold only strings, numbers and lists, at a
    fraction of the cost on every call. A ``Response`` with JSONResponse's media type rather
    than a subclass of it, whose ``__init__`` only calls ``Response``'s."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


@requires("authenticated")
async def whoami(request: Request) -> ApiJSONResponse:
    """Who the API key belongs to; never its secret or hash."""
    key: KeyRecord = request.scope[SCOPE_KEY]
    return ApiJSONResponse(
        {
            "key_id": key.key_id,
            "key_name": key.name,
            "owner_email": key.owner_email,
            "organization": key.organization_name,
            "organization_id": key.organization_id,
            "scopes": list(key.scopes),
        }
    )


def _workflow_json(workflow: Workflow) -> dict[str, object]:
    return {
        "id": str(workflow.id),
        "name": workflow.name,
        "created_by_key_id": workflow.created_by_key_id,
        "created_at": workflow.created_at.isoformat(),
    }


def _bad_request(message: str) -> ApiJSONResponse:
    return ApiJSONResponse({"error": "invalid_request", "message": message}, status_code=400)


@requires_scope("workflows:read")
async def list_workflows(request: Request) -> ApiJSONResponse:
    """The key's organization's newest workflows."""
    key: KeyRecord = request.scope[SCOPE_KEY]
    workflows = (
        await Workflow.filter(organization_id=key.organization_id)
        .order_by("-created_at", "-id")
        .limit(MAX_WORKFLOWS_LISTED)
    )
    return ApiJSONResponse({"workflows": [_workflow_json(w) for w in workflows]})


@requires_scope("workflows:write")
async def create_workflow(request: Request) -> ApiJSONResponse:
    """Create a workflow named by ``{"name": "..."}`` in the key's organization."""
    key: KeyRecord = request.scope[SCOPE_KEY]
    body = await request.body()
    if len(body) > _MAX_WORKFLOW_BODY:
        return _bad_request("The body is too large.")
    try:
        payload = loads_json(body)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, a lone surrogate, too deep
        payload = None
    name = payload.get("name") if isinstance(payload, dict) else None
    if not isinstance(name, str):
        return _bad_request('The body must be JSON: {"name": "..."}.')
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH or not name.isprintable():
        return _bad_request(f"The name must have 1 to {MAX_NAME_LENGTH} printable characters.")
    workflow = await Workflow.create(
        organization_id=key.organization_id, name=name, created_by_key_id=key.key_id
    )
    return ApiJSONResponse(_workflow_json(workflow), status_code=201)


def create_api(
    settings: Settings,
    *,
    throttle_store: ThrottleStore | None = None,
    observer: AuthObserver | None = None,
    clock: Callable[[], datetime] | None = None,
    timer: Callable[[], float] = time.monotonic,
    feed: ChangeFeed | None = None,
    counter_store: CounterStore | None = None,
    call_sink: CallSink | None = None,
    settle: Callable[[], Awaitable[None]] | None = None,
) -> ApiKeyAuthMiddleware:
    """The sample API wrapped in the middleware, with the Tortoise stores.

    The caller owns the database connection (the server's lifespan opens it) and wires the
    middleware's ``key_changed`` to the key mutations and to the change listener.
    ``throttle_store`` is the store shared by every process (``WFA_THROTTLE_STORE``);
    ``observer`` counts the outcomes for ``/metrics``. ``counter_store`` holds the keys'
    rate limits and quotas (``WFA_THROTTLE_STORE`` too), ``call_sink`` their call
    analytics (``wfa_keys.usage``). ``clock`` (wall time, for key and
    grace-period expiry) and ``timer`` (monotonic seconds, for caches) are for tests.

    The routes are a Starlette ``Router`` under Starlette's ``ExceptionMiddleware`` (which
    answers ``HTTPException``, the 403 of ``@requires`` among them), as the app mounting
    them would give them, rather than an app of their own, which would add its own error
    layer on every call: an unhandled error goes up to the app mounting them. In the service
    the request log answers it (:class:`~wfa_keys.logs.RequestLogMiddleware`).

    For other services: ``POST /v1/keys/verify`` (:mod:`wfa_keys.verification`, the
    middleware's own checks), ``GET /v1/keys/changes`` (:mod:`wfa_keys.stream`, read by
    ``feed``, one per process) and the public ``GET /openapi.json``. ``settle`` applies
    the changes committed so far before each verification (the change listener's catch-up).
    """
    verification = KeyVerification(settle)
    app = ExceptionMiddleware(
        Router(
            routes=[
                Route("/v1/whoami", whoami, methods=["GET"]),
                Route("/v1/workflows", list_workflows, methods=["GET"]),
                Route("/v1/workflows", create_workflow, methods=["POST"]),
                Route("/v1/keys/verify", verification.verify, methods=["POST"]),
                Route(
                    "/v1/keys/changes",
                    ChangeStream(feed if feed is not None else ChangeFeed()),
                    methods=["GET"],
                ),
                Route(OPENAPI_PATH, openapi_endpoint, methods=["GET"]),
            ]
        )
    )
    middleware = ApiKeyAuthMiddleware(
        app,
        store=TortoiseKeyStore(),
        token_store=TortoiseTokenStore(),
        verifier=hasher_for(settings),
        tokens=Tokens(ttl=settings.token_ttl, max_per_key=MAX_TOKENS_PER_KEY),
        throttling=Throttling(store=throttle_store),
        observer=observer,
        public_paths=[OPENAPI_PATH],
        metering=Metering(counters=counter_store, calls=call_sink),
        clock=clock,
        timer=timer,
    )
    verification.authenticator = middleware.authenticator
    verification.limiter = middleware.limiter
    verification.calls = middleware.calls
    return middleware
