"""A Starlette app that checks keys issued by a running ``wfa-keys`` service.

    export WFA_SERVICE_URL=http://127.0.0.1:8000          # the service's base URL
    export WFA_SERVICE_KEY_ID=... WFA_SERVICE_KEY_SECRET=...  # a key with keys:verify
    uvicorn examples.remote_app:app --port 9000             # from the repository root
    curl -u "$KEY_ID:$KEY_SECRET" http://127.0.0.1:9000/whoami
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:9000/workflows

Keys are verified through the service once, then served from this process's memory until
the service's change stream says they changed (or their ``cache_ttl`` ends). Tokens come
from the service's own ``POST /api/v1/auth/api-key/token``.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from wfa_auth import SCOPE_KEY, ApiKeyAuthMiddleware, KeyRecord, requires_scope
from wfa_auth.remote import RemoteAuthority

authority = RemoteAuthority(
    os.environ["WFA_SERVICE_URL"],
    key_id=os.environ["WFA_SERVICE_KEY_ID"],
    key_secret=os.environ["WFA_SERVICE_KEY_SECRET"],
)


async def whoami(request: Request) -> JSONResponse:
    """The caller's Key ID and scopes (the middleware let only valid keys through)."""
    key: KeyRecord = request.scope[SCOPE_KEY]
    return JSONResponse({"key_id": key.key_id, "scopes": list(key.scopes)})


@requires_scope("workflows:read")
async def workflows(request: Request) -> JSONResponse:
    """Needs the ``workflows:read`` scope; 403 ``insufficient_scope`` otherwise."""
    key: KeyRecord = request.scope[SCOPE_KEY]
    return JSONResponse({"workflows": [], "key_id": key.key_id})


app = Starlette(
    routes=[Route("/whoami", whoami), Route("/workflows", workflows)],
    # Wrapping the whole app, the middleware gets the lifespan: it follows the change stream
    # while the app runs.
    middleware=[Middleware(ApiKeyAuthMiddleware, authority=authority)],
)
