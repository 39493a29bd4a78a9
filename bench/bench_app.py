"""The app the benchmark serves: one trivial route, with or without the middleware.

``WFA_BENCH_MODE=none`` serves it bare; ``auth`` puts it behind ApiKeyAuthMiddleware with the
memory store holding one key (``WFA_BENCH_KEY_ID`` / ``WFA_BENCH_KEY_SECRET``, throwaway
values made up by the driver). The memory store keeps the figures about the middleware:
warm requests touch no store at all, whichever store is plugged in.

``/same-bytes`` answers the body and headers given as JSON in ``WFA_BENCH_SAME_BYTES``
(``{"body": "...", "headers": [["name", "value"], ...]}``): the bench gives it what the
service answered to a call, so that a bare route sends the very same bytes.
"""

from __future__ import annotations

import json
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from wfa_auth import ApiKeyAuthMiddleware, Argon2Verifier, MemoryKeyRecord, MemoryKeyStore


async def ping(request: Request) -> PlainTextResponse:
    return PlainTextResponse("pong")


def same_bytes_route() -> Route:
    answer = json.loads(os.environ.get("WFA_BENCH_SAME_BYTES", '{"body": "", "headers": []}'))
    body = answer["body"].encode()
    headers = dict(answer["headers"])

    async def same_bytes(request: Request) -> Response:
        return Response(body, headers=headers)

    return Route("/same-bytes", same_bytes)


def create() -> ASGIApp:
    app = Starlette(routes=[Route("/ping", ping), same_bytes_route()])
    if os.environ["WFA_BENCH_MODE"] == "none":
        return app
    verifier = Argon2Verifier()
    store = MemoryKeyStore()
    store.add(
        MemoryKeyRecord(
            key_id=os.environ["WFA_BENCH_KEY_ID"],
            name="bench",
            secret_hash=verifier.hash(os.environ["WFA_BENCH_KEY_SECRET"]),
            owner_id="bench",
            owner_email="bench@example.com",
            organization_id="bench",
            organization_name="Bench",
        )
    )
    return ApiKeyAuthMiddleware(app, store=store, verifier=verifier)
