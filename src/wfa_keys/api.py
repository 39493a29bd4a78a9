"""The sample Workflow Automation API, behind the API-key middleware.

``wfa-keys serve`` mounts it under ``/api``: ``POST /api/v1/auth/api-key/token`` (served by
the middleware) and ``GET /api/v1/whoami``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from wfa_auth import SCOPE_KEY, ApiKeyAuthMiddleware, AuthObserver, KeyRecord, ThrottleStore
from wfa_keys.crypto import hasher_for
from wfa_keys.settings import Settings
from wfa_keys.store import TortoiseKeyStore, TortoiseTokenStore


@requires("authenticated")
async def whoami(request: Request) -> JSONResponse:
    """Who the API key belongs to; never its secret or hash."""
    key: KeyRecord = request.scope[SCOPE_KEY]
    return JSONResponse(
        {
            "key_id": key.key_id,
            "key_name": key.name,
            "owner_email": key.owner_email,
            "organization": key.organization_name,
            "organization_id": key.organization_id,
        }
    )


def create_api(
    settings: Settings,
    *,
    throttle_store: ThrottleStore | None = None,
    observer: AuthObserver | None = None,
) -> ApiKeyAuthMiddleware:
    """The sample API wrapped in the middleware, with the Tortoise stores.

    The caller owns the database connection (the server's lifespan opens it) and wires the
    middleware's ``key_changed`` to the key mutations and to the change listener.
    ``throttle_store`` is the store shared by every process (``WFA_THROTTLE_STORE``);
    ``observer`` counts the outcomes for ``/metrics``.
    """
    # TODO(merge with mw): pass throttling=Throttling(store=throttle_store) and
    # observer=observer to ApiKeyAuthMiddleware below; main's constructor takes neither,
    # so on this branch the API's throttles count per process and no outcome is observed.
    del throttle_store, observer
    app = Starlette(routes=[Route("/v1/whoami", whoami, methods=["GET"])])
    return ApiKeyAuthMiddleware(
        app,
        store=TortoiseKeyStore(),
        token_store=TortoiseTokenStore(),
        verifier=hasher_for(settings),
        token_ttl=settings.token_ttl,
    )
