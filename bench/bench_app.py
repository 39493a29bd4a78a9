"""The app the benchmark serves: one trivial route, with or without the middleware.

``WFA_BENCH_MODE=none`` serves it bare; ``auth`` puts it behind ApiKeyAuthMiddleware with the
memory store holding one key (``WFA_BENCH_KEY_ID`` / ``WFA_BENCH_KEY_SECRET``, throwaway
values made up by the driver). The memory store keeps the figures about the middleware:
warm requests touch no store at all, whichever store is plugged in.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from wfa_auth import ApiKeyAuthMiddleware, Argon2Verifier, MemoryKeyRecord, MemoryKeyStore


async def ping(request: Request) -> PlainTextResponse:
    return PlainTextResponse("pong")


def create() -> ASGIApp:
    app = Starlette(routes=[Route("/ping", ping)])
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
