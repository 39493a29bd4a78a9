"""The ASGI application: the GraphQL admin API, the key-authenticated API and the health check.

``wfa-keys serve`` runs it with uvicorn; ``uvicorn --factory wfa_keys.app:create_app`` works
too, with the settings taken from the environment (see :func:`create_app`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from wfa_auth import CounterStore, ThrottleStore, route_path
from wfa_keys.api import create_api
from wfa_keys.audit import prune_audit_events
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
from wfa_keys.counters import DatabaseCounterStore, close_counter_store, counter_store_for
from wfa_keys.db import close_global, open_global, ping
from wfa_keys.deadline import Deadline
from wfa_keys.graphql import create_graphql_app
from wfa_keys.graphql.graphiql import ASSETS_DIR as GRAPHIQL_ASSETS
from wfa_keys.graphql.graphiql import ASSETS_PATH as GRAPHIQL_ASSETS_PATH
from wfa_keys.graphql.schema import ExtensionFactory
from wfa_keys.health import Health, livez
from wfa_keys.inactivity import run_periodically
from wfa_keys.logs import AddHeaders, RequestLogMiddleware, configure_logging
from wfa_keys.proxy import (
    ClientAddressMiddleware,
    RootPathMiddleware,
    check_client_address,
    with_root_path,
)
from wfa_keys.settings import Settings
from wfa_keys.stream import ChangeFeed
from wfa_keys.throttling import (
    DatabaseThrottleStore,
    RedisThrottleStore,
    close_throttle_store,
    throttle_store_for,
)
from wfa_keys.usage import TortoiseCallSink, prune_usage
from wfa_keys.webhooks.running import start_webhooks

__all__ = ["API_PATH", "GRAPHQL_PATH", "create_app"]

GRAPHQL_PATH = "/graphql"
#: The key-authenticated API: no cookie, no page, so none of the browser-only middlewares.
API_PATH = "/api"
#: How often each process deletes old change rows and expired throttle slots.
HOUSEKEEPING_INTERVAL = 3600.0

logger = logging.getLogger("wfa_keys.health")


def _throttle_store_ping(store: ThrottleStore) -> Callable[[], Awaitable[Any]] | None:
    """What ``/healthz`` runs to check ``store``: Redis's PING, the database's ping for the
    database store, nothing for the memory store."""
    if isinstance(store, RedisThrottleStore):
        return store.ping
    if isinstance(store, DatabaseThrottleStore):
        return ping
    return None


async def _api_without_slash(request: Request) -> RedirectResponse:
    """``/api`` without its slash: redirected to ``/api/``, as Starlette's router redirects
    when no route answers (with the console on, its catch-all mount would answer first)."""
    return RedirectResponse(request.url.replace(path=request.url.path + "/"))


async def _housekeeping(
    store: ThrottleStore,
    counters: CounterStore | None = None,
    usage_retention_days: int | None = None,
    audit_retention_days: int = 365,
) -> None:
    """Delete change rows older than a day, expired throttle slots, forgotten rate-limit
    counters, call analytics past their retention and audit events past theirs
    (``WFA_AUDIT_RETENTION_DAYS``), about hourly."""
    # Jittered, so that the processes of a fleet started together do not all prune at once.
    await asyncio.sleep(HOUSEKEEPING_INTERVAL * random.random())  # noqa: S311
    while True:
        try:
            await prune_changes()
            if isinstance(store, DatabaseThrottleStore):
                await store.prune()
            await prune_audit_events(audit_retention_days)
            if isinstance(counters, DatabaseCounterStore):
                await counters.prune()
            if usage_retention_days is not None:
                await prune_usage(usage_retention_days)
        except Exception as exc:  # next time, then; nothing depends on it soon
            logger.warning("housekeeping failed (%s)", type(exc).__name__)
        await asyncio.sleep(HOUSEKEEPING_INTERVAL)


def may_have_body(scope: Scope) -> bool:
    """False for an HTTP/1.x request with neither ``Content-Length`` nor ``Transfer-Encoding``,
    which has no body (RFC 9112, 6.3)."""
    if scope.get("http_version") not in ("1.1", "1.0"):
        return True
    # A loop, not any() over a generator: this runs on every API call.
    for name, _value in scope["headers"]:  # noqa: SIM110
        if name in _BODY_HEADERS:
            return True
    return False


_BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding"})


class BodyLimitMiddleware(RequestBodyLimitMiddleware):
    """Starlette's body limit, for the requests that can have a body (:func:`may_have_body`).

    The others pass without the limit's wrappers around ``receive`` and ``send``, which most
    API calls (GETs) would otherwise pay for nothing.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not may_have_body(scope):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class ApiLane:
    """Sends HTTP requests below ``mount`` straight to its app, in one pass.

    The key-authenticated API is the hot path: a warm call should cost little more than its
    route. Through the whole app it would also cross Starlette's error and exception layers
    and router, and the browser-only middlewares. On this lane it gets what the whole app
    would give it, each step done here rather than by a middleware layer of its own:
    ``root_path`` (``WFA_ROOT_PATH``, as :class:`~wfa_keys.proxy.RootPathMiddleware` applies
    it), the client address check (:func:`~wfa_keys.proxy.check_client_address`), the
    request log with ``add_headers`` (:class:`~wfa_keys.logs.RequestLogMiddleware`, which
    also answers an unhandled error with Starlette's plain 500, as the app's error layer
    would), the body limit for requests that can have a body (:func:`may_have_body`), and the
    child scope :meth:`Mount.matches` would give. The API's routes bring Starlette's
    exception layer and router of their own (:func:`~wfa_keys.api.create_api`). Everything
    else, websockets and lifespan included, goes to ``app``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        mount: Mount,
        root_path: str = "",
        add_headers: AddHeaders | None = None,
        deadline: Deadline | None = None,
        max_body_size: int,
    ) -> None:
        self.app = app
        self.mount = mount
        self.prefix = mount.path + "/"
        self.root_path = root_path
        # The request log outermost, so that the body limit's 413 is logged with the headers.
        self.logged = RequestLogMiddleware(mount.app, add_headers=add_headers, deadline=deadline)
        self.logged_limited = RequestLogMiddleware(
            RequestBodyLimitMiddleware(mount.app, max_body_size=max_body_size),
            add_headers=add_headers,
            deadline=deadline,
        )

    # A function returning the next layer's awaitable, not a coroutine of its own: a frame
    # less on every request (ASGI's app is any callable returning an awaitable).
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http" or not route_path(scope).startswith(self.prefix):
            return self.app(scope, receive, send)
        if self.root_path and not scope.get("root_path"):
            scope = with_root_path(scope, self.root_path)
        check_client_address(scope)
        # The prefix matched: the child scope Mount.matches would give. Its one path parameter
        # (the rest of the path) is dropped from the child scope, so the child scope is the
        # same for every such path, made here without the mount's regular expression
        # (tests/service/test_app.py compares the two).
        root_path = scope.get("root_path", "")
        scope["path_params"] = dict(scope.get("path_params", {}))
        scope["app_root_path"] = scope.get("app_root_path", root_path)
        scope["root_path"] = root_path + self.mount.path
        scope["endpoint"] = self.mount.app
        if may_have_body(scope):
            return self.logged_limited(scope, receive, send)
        return self.logged(scope, receive, send)


class _Service(Starlette):
    """The service's app: the whole Starlette stack, with :class:`ApiLane` in front of it."""

    def __init__(self, *, lane: Callable[[ASGIApp], ApiLane], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lane = lane

    def build_middleware_stack(self) -> ASGIApp:
        return self._lane(super().build_middleware_stack())


_startup_heap_frozen = False


def freeze_startup_heap() -> None:
    """Leave what startup built out of the garbage collector's full passes (once a process).

    A full pass walks every object the collector tracks, and most of them are the modules,
    the schema and the settings made at startup, alive until the process ends: each pass
    paused the process for tens of milliseconds on a loaded machine, which set the p99 of
    large answers (a month of a key's hourly usage). Frozen, they are skipped; a pass walks
    only what was made since. What is garbage already is collected first.
    """
    global _startup_heap_frozen  # once per process, however many apps it builds
    if not _startup_heap_frozen:
        _startup_heap_frozen = True
        gc.collect()
        gc.freeze()


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
    # Rate limits and quotas are counted where the throttles are (WFA_THROTTLE_STORE).
    counter_store = counter_store_for(settings.throttle_store)
    extensions: list[ExtensionFactory] = []
    observer = None
    routes: list[BaseRoute] = []
    if settings.metrics:
        from wfa_keys.metrics import GraphQLOperationMetrics, MetricsObserver, metrics_endpoint

        observer = MetricsObserver()
        extensions.append(GraphQLOperationMetrics)
        routes.append(Route("/metrics", metrics_endpoint, methods=["GET"]))
    if settings.graphiql_enabled and not settings.graphiql_assets_url:
        # GraphiQL's files from the wheel, so that it works without internet (graphiql.py).
        routes.append(Mount(f"/{GRAPHIQL_ASSETS_PATH}", app=StaticFiles(directory=GRAPHIQL_ASSETS)))
    # The shared throttle store serves the middleware's throttles and the sign-in throttle.
    # The change stream's poller, shared by every stream of this process (issue 19).
    feed = ChangeFeed()
    api = create_api(
        settings,
        throttle_store=throttle_store,
        observer=observer,
        feed=feed,
        counter_store=counter_store,
        # The listener below, once made: a verification applies every committed change first.
        settle=lambda: listener.catch_up(),
        call_sink=TortoiseCallSink(
            on_recorded=observer.on_calls_recorded if observer is not None else None
        ),
    )

    async def key_changed(key_id: str) -> None:
        await api.key_changed(key_id)
        feed.wake()  # the change streams of this process hear of it without waiting a poll

    graphql_app = create_graphql_app(
        settings,
        on_key_changed=key_changed,
        throttle_store=throttle_store,
        extensions=extensions,
        counter_store=counter_store,
    )
    listener = ChangeListener(
        api,
        settings.database_url,
        healthy_ttl=settings.record_cache_ttl,
        observer=observer.on_key_change if observer is not None else None,
    )
    health = Health(listener, throttle_store_ping=_throttle_store_ping(throttle_store))
    deadline = Deadline(settings.request_timeout, graphql_path=GRAPHQL_PATH)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await open_global(
            settings.database_url,
            pool_size=settings.database_pool_size,
            statement_timeout=settings.database_timeout,
        )
        housekeeping: asyncio.Task[None] | None = None
        try:
            admin = await bootstrap_admin(settings)
            if admin is not None:
                announce_admin(admin)
            await listener.start()
            housekeeping = asyncio.create_task(
                _housekeeping(
                    throttle_store,
                    counter_store,
                    settings.usage_retention_days,
                    settings.audit_retention_days,
                )
            )
            # Mounted apps get no lifespan events of their own: run the middleware's timer
            # (each key's last use written when its minute ends), and write the pending
            # last-used times before the connections close.
            # Open change streams end when the server is told to stop (else it waits for them).
            async with api.running(), feed.ending_on_exit_signals():
                # Keys past their organization's inactivity limit, disabled by every process
                # (a conditional update: one of them wins), this one's cache told at once.
                checker = asyncio.create_task(
                    run_periodically(
                        settings.inactivity_check_interval, on_disabled=api.key_changed
                    )
                )
                # Webhooks (issue 23): this process's delivery worker and reminder check.
                webhooks = start_webhooks(settings)
                freeze_startup_heap()
                try:
                    yield
                finally:
                    await webhooks.stop()
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
            await close_counter_store(counter_store)
            await close_global()

    root = (
        [Middleware(RootPathMiddleware, root_path=settings.root_path)] if settings.root_path else []
    )
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
        lane=functools.partial(
            ApiLane,
            mount=api_mount,
            root_path=settings.root_path,
            add_headers=add_security_headers,
            deadline=deadline,
            max_body_size=settings.max_body_bytes,
        ),
        routes=[
            # Every method reaches the view, so that a PUT is refused in GraphQL's error
            # shape (405) like the view's other refusals, not in Starlette's plain text.
            Route(GRAPHQL_PATH, graphql_app),
            Route("/healthz", health.endpoint, methods=["GET"]),
            Route("/livez", livez, methods=["GET"]),
            *routes,
            # Reached through the router only by websockets: HTTP requests below ``/api/``
            # take the lane.
            api_mount,
            Route(API_PATH, _api_without_slash),
            # Last: the console answers every path the routes above do not.
            *([Mount("/", app=create_console_app())] if settings.console else []),
        ],
        # Outermost first; the lane above does the same for HTTP calls to the API.
        middleware=[
            *root,
            # Before anything reads the client address: an address that is not an IP
            # address (a forwarded header's free text) becomes no address.
            Middleware(ClientAddressMiddleware),
            # Every answer, refusals included, is logged with its request ID and carries the
            # security headers, added in the same pass.
            Middleware(RequestLogMiddleware, add_headers=add_security_headers, deadline=deadline),
            # Skipping the API still: its websockets come this way.
            Middleware(BrowserOnly, skip=[API_PATH], middleware=browser),
            # Starlette's own body limit, placed here rather than through ``max_body_size=``
            # (which puts it outside every middleware) so that the 413 is logged and carries
            # the headers.
            Middleware(BodyLimitMiddleware, max_body_size=settings.max_body_bytes),
        ],
        lifespan=lifespan,
    )
