"""The ASGI application: the GraphQL admin API, the key-authenticated API and the health check.

``wfa-keys serve`` runs it with uvicorn; ``uvicorn --factory wfa_keys.app:create_app`` works
too, with the settings taken from the environment (see :func:`create_app`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from wfa_auth import ThrottleStore, route_path
from wfa_keys.api import create_api
from wfa_keys.bootstrap import announce_admin, bootstrap_admin
from wfa_keys.browser import (
    BrowserOnly,
    CrossSiteRequestMiddleware,
    SecurityHeadersMiddleware,
    add_security_headers,
    cors_middleware,
)
from wfa_keys.changes import ChangeListener, prune_changes
from wfa_keys.console import create_console_app
from wfa_keys.db import close_global, open_global, ping
from wfa_keys.graphql import create_graphql_app
from wfa_keys.graphql.schema import ExtensionFactory
from wfa_keys.inactivity import run_periodically
from wfa_keys.logs import RequestLogMiddleware, configure_logging
from wfa_keys.proxy import ClientAddressMiddleware, RootPathMiddleware
from wfa_keys.settings import Settings
from wfa_keys.throttling import DatabaseThrottleStore, close_throttle_store, throttle_store_for

__all__ = ["API_PATH", "GRAPHQL_PATH", "HEALTH_TIMEOUT_SECONDS", "create_app", "healthz"]

GRAPHQL_PATH = "/graphql"
#: The key-authenticated API: no cookie, no page, so none of the browser-only middlewares.
API_PATH = "/api"
#: A database that takes longer than this to answer ``SELECT 1`` counts as unavailable.
HEALTH_TIMEOUT_SECONDS = 5.0
#: How often each process deletes old change rows and expired throttle slots.
HOUSEKEEPING_INTERVAL = 3600.0

logger = logging.getLogger("wfa_keys.health")


async def healthz(_request: Request) -> JSONResponse:
    """200 ``{"status": "ok"}`` when the database answers, 503 when it does not."""
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
            await ping()
    except Exception as exc:  # whatever the failure, the answer is "unavailable"
        logger.warning("database unavailable (%s)", type(exc).__name__)
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})


async def _housekeeping(store: ThrottleStore) -> None:
    """Delete change rows older than a day and expired throttle slots, about hourly."""
    # Jittered, so that the processes of a fleet started together do not all prune at once.
    await asyncio.sleep(HOUSEKEEPING_INTERVAL * random.random())  # noqa: S311
    while True:
        try:
            await prune_changes()
            if isinstance(store, DatabaseThrottleStore):
                await store.prune()
        except Exception as exc:  # next time, then; nothing depends on it soon
            logger.warning("housekeeping failed (%s)", type(exc).__name__)
        await asyncio.sleep(HOUSEKEEPING_INTERVAL)


class BodyLimitMiddleware(RequestBodyLimitMiddleware):
    """Starlette's body limit, for the requests that can have a body.

    An HTTP/1.x request with neither ``Content-Length`` nor ``Transfer-Encoding`` has no body
    (RFC 9112, 6.3): it passes without the limit's wrappers around ``receive`` and ``send``,
    which most API calls (GETs) would otherwise pay for nothing.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("http_version") in ("1.1", "1.0"):
            for name, _value in scope["headers"]:
                if name in _BODY_HEADERS:
                    break
            else:
                await self.app(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


_BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding"})


class ApiLane:
    """Sends HTTP requests below ``mount`` straight to its app, through ``middleware`` only.

    The key-authenticated API is the hot path: a warm call should cost little more than its
    route. Through the whole app it would also cross Starlette's error and exception layers
    and router (twice: the API is an app of its own, with its own), and the browser-only
    middlewares; on this lane it crosses what it needs (the client address, the request log
    and security headers, the body limit) and is mounted exactly as :class:`Mount` mounts it.
    Everything else, websockets and lifespan included, goes to ``app``.
    """

    def __init__(self, app: ASGIApp, *, mount: Mount, middleware: Sequence[Middleware]) -> None:
        self.app = app
        self.mount = mount
        self.prefix = mount.path + "/"
        lane: ASGIApp = self._mounted
        for cls, args, kwargs in reversed(middleware):
            lane = cls(lane, *args, **kwargs)
        self.lane = lane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and route_path(scope).startswith(self.prefix):
            await self.lane(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _mounted(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The prefix matched, so the mount does: the same child scope (root_path, path
        # params) as through the router.
        _match, child_scope = self.mount.matches(scope)
        scope.update(child_scope)
        await self.mount.app(scope, receive, send)


class _Service(Starlette):
    """The service's app: the whole Starlette stack, with :class:`ApiLane` in front of it."""

    def __init__(self, *, api: Mount, lane: Sequence[Middleware], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._api, self._lane = api, lane

    def build_middleware_stack(self) -> ASGIApp:
        return ApiLane(super().build_middleware_stack(), mount=self._api, middleware=self._lane)


def create_app(settings: Settings | None = None) -> Starlette:
    """The service as one Starlette app; ``settings`` default to the environment's.

    Without ``settings`` (``uvicorn --factory wfa_keys.app:create_app``, and each worker of
    ``wfa-keys serve --workers N``) it also sends the logs to stderr as JSON lines, like
    ``serve``. Either way, the lifespan migrates the database and creates the first admin
    when there is no user yet (printing its generated password once).
    """
    if settings is None:
        settings = Settings.from_env()
        configure_logging(settings.log_level)
        # The request log replaces uvicorn's access log, which would log query strings.
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    throttle_store = throttle_store_for(settings.throttle_store)
    extensions: list[ExtensionFactory] = []
    observer = None
    routes: list[BaseRoute] = []
    if settings.metrics:
        from wfa_keys.metrics import GraphQLOperationMetrics, MetricsObserver, metrics_endpoint

        observer = MetricsObserver()
        extensions.append(GraphQLOperationMetrics)
        routes.append(Route("/metrics", metrics_endpoint, methods=["GET"]))
    # The shared throttle store serves the middleware's throttles and the sign-in throttle.
    api = create_api(settings, throttle_store=throttle_store, observer=observer)
    graphql_app = create_graphql_app(
        settings,
        on_key_changed=api.key_changed,
        throttle_store=throttle_store,
        extensions=extensions,
    )
    listener = ChangeListener(
        api,
        settings.database_url,
        healthy_ttl=settings.record_cache_ttl,
        observer=observer.on_key_change if observer is not None else None,
    )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await open_global(settings.database_url, pool_size=settings.database_pool_size)
        housekeeping: asyncio.Task[None] | None = None
        try:
            admin = await bootstrap_admin(settings)
            if admin is not None:
                announce_admin(admin)
            await listener.start()
            housekeeping = asyncio.create_task(_housekeeping(throttle_store))
            # Mounted apps get no lifespan events of their own: run the middleware's timer
            # (each key's last use written when its minute ends), and write the pending
            # last-used times before the connections close.
            async with api.running():
                # Keys past their organization's inactivity limit, disabled by every process
                # (a conditional update: one of them wins), this one's cache told at once.
                checker = asyncio.create_task(
                    run_periodically(
                        settings.inactivity_check_interval, on_disabled=api.key_changed
                    )
                )
                try:
                    yield
                finally:
                    checker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await checker
        finally:
            if housekeeping is not None:
                housekeeping.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await housekeeping
            await listener.stop()
            await close_throttle_store(throttle_store)
            await close_global()

    root = (
        [Middleware(RootPathMiddleware, root_path=settings.root_path)] if settings.root_path else []
    )
    # Outermost first. Before anything reads the client address: an address that is not an
    # IP address (a forwarded header's free text) becomes no address.
    client_address = Middleware(ClientAddressMiddleware)
    # Every answer, refusals included, is logged with its request ID and carries the security
    # headers, added in the same pass.
    request_log = Middleware(RequestLogMiddleware, add_headers=add_security_headers)
    # Starlette's own body limit, placed here rather than through ``max_body_size=`` (which
    # puts it outside every middleware) so that the 413 is logged and carries the headers.
    body_limit = Middleware(BodyLimitMiddleware, max_body_size=settings.max_body_bytes)
    # What only browsers need (the API under API_PATH takes its own lane, without them).
    browser = [
        Middleware(SecurityHeadersMiddleware),
        cors_middleware(settings),
        Middleware(
            CrossSiteRequestMiddleware,
            allowed_origins=settings.cors_origins,
            paths=[GRAPHQL_PATH],
        ),
    ]
    api_mount = Mount(API_PATH, app=api)
    return _Service(
        api=api_mount,
        lane=[*root, client_address, request_log, body_limit],
        routes=[
            # Every method reaches the view, so that a PUT is refused in GraphQL's error
            # shape (405) like the view's other refusals, not in Starlette's plain text.
            Route(GRAPHQL_PATH, graphql_app),
            Route("/healthz", healthz, methods=["GET"]),
            *routes,
            # Reached through the router only by websockets: HTTP requests below ``/api/``
            # take the lane.
            api_mount,
            # Last: the console answers every path the routes above do not.
            *([Mount("/", app=create_console_app())] if settings.console else []),
        ],
        middleware=[
            *root,
            client_address,
            request_log,
            # Skipping the API still: its websockets come this way.
            Middleware(BrowserOnly, skip=[API_PATH], middleware=browser),
            body_limit,
        ],
        lifespan=lifespan,
    )
