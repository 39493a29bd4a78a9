"""Requiring scopes on endpoints, with an answer a program can act on."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.authentication import has_required_scope
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from wfa_auth._calls import SCOPE_OUTCOME
from wfa_auth._responses import REALM

Endpoint = Callable[[Request], Awaitable[Response]]


def insufficient_scope(scope: str) -> JSONResponse:
    """403 ``{"error": "insufficient_scope", "scope": ...}`` and the RFC 6750 challenge."""
    return JSONResponse(
        {
            "error": "insufficient_scope",
            "message": f"This API key does not have the scope {scope}.",
            "scope": scope,
        },
        status_code=403,
        headers={
            "WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope", '
            f'scope="{scope}"',
            "Cache-Control": "no-store",
        },
    )


def requires_scope(*scopes: str) -> Callable[[Endpoint], Endpoint]:
    """Like Starlette's ``@requires``, for ``async def endpoint(request)``: a request whose key
    lacks one of ``scopes`` is answered 403 with a JSON body naming the first one missing.

    The middleware puts a key's scopes in ``request.auth.scopes`` (with ``authenticated``), so
    Starlette's own ``@requires("workflows:read")`` works too; it answers a plain 403.
    """

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def checked(request: Request) -> Response:
            for scope in scopes:
                if not has_required_scope(request, [scope]):
                    # Counted as this outcome in the key's call analytics.
                    request.scope[SCOPE_OUTCOME] = "insufficient_scope"
                    return insufficient_scope(scope)
            return await endpoint(request)

        return checked

    return decorate
