"""The ASGI application: the GraphQL admin API, the key-authenticated API and the health check.

``wfa-keys serve`` runs it with uvicorn; ``uvicorn --factory wfa_keys.app:create_app`` works
too, with the settings taken from the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from wfa_keys.api import create_api
from wfa_keys.browser import (
    BrowserOnly,
    CrossSiteRequestMiddleware,
    SecurityHeadersMiddleware,
    add_security_headers,
    cors_middleware,
)
from wfa_keys.console import create_console_app
from wfa_keys.db import close_global, open_global, ping
from wfa_keys.graphql import create_graphql_app
from wfa_keys.inactivity import run_periodically
from wfa_keys.logs import RequestLogMiddleware
from wfa_keys.settings import Settings

__all__ = ["API_PATH", "GRAPHQL_PATH", "HEALTH_TIMEOUT_SECONDS", "create_app", "healthz"]

GRAPHQL_PATH = "/graphql"
#: The key-authenticated API: no cookie, no page, so none of the browser-only middlewares.
API_PATH = "/api"
#: A database that takes longer than this to answer ``SELECT 1`` counts as unavailable.
HEALTH_TIMEOUT_SECONDS = 5.0

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


def create_app(settings: Settings | None = None) -> Starlette:
    """The service as one Starlette app; ``settings`` default to the environment's."""
    settings = Settings.from_env() if settings is None else settings
    api = create_api(settings)
    graphql_app = create_graphql_app(settings, on_key_changed=api.key_changed)
    database_url = settings.database_url

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await open_global(database_url)
        try:
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
            await close_global()

    return Starlette(
        routes=[
            Route(GRAPHQL_PATH, graphql_app, methods=["GET", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Mount(API_PATH, app=api),
            # Last: the console answers every path the routes above do not.
            *([Mount("/", app=create_console_app())] if settings.console else []),
        ],
        middleware=[
            # Outermost first: every answer, refusals included, is logged with its request ID
            # and carries the security headers, added in the same pass.
            Middleware(RequestLogMiddleware, add_headers=add_security_headers),
            # What only browsers need, for every path but the API's (each layer is a pass
            # over every request).
            Middleware(
                BrowserOnly,
                skip=[API_PATH],
                middleware=[
                    Middleware(SecurityHeadersMiddleware),
                    cors_middleware(settings),
                    Middleware(
                        CrossSiteRequestMiddleware,
                        allowed_origins=settings.cors_origins,
                        paths=[GRAPHQL_PATH],
                    ),
                ],
            ),
            # Starlette's own body limit, placed here rather than through ``max_body_size=``
            # (which puts it outside every middleware) so that the 413 is logged and carries
            # the headers above.
            Middleware(RequestBodyLimitMiddleware, max_body_size=settings.max_body_bytes),
        ],
        lifespan=lifespan,
    )
