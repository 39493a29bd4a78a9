"""Helpers for the middleware tests: a counting verifier and store, a clock, an app, clients."""

from __future__ import annotations

import base64
import threading
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from wfa_auth import SCOPE_KEY, Argon2Verifier, MemoryKeyRecord, MemoryKeyStore


class CountingVerifier(Argon2Verifier):
    """argon2id with the smallest parameters, counting calls and the threads they ran on."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost_kib=8, parallelism=1)
        self.verify_calls = 0
        self.verified_hashes: list[str] = []
        self.threads: set[int] = set()

    def verify(self, secret_hash: str, secret: str) -> bool:
        self.verify_calls += 1
        self.verified_hashes.append(secret_hash)
        self.threads.add(threading.get_ident())
        return super().verify(secret_hash, secret)


class CountingStore(MemoryKeyStore):
    """A memory store that counts lookups."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    async def get_key(self, key_id: str) -> MemoryKeyRecord | None:
        self.lookups += 1
        return await super().get_key(key_id)


async def whoami(request: Request) -> JSONResponse:
    key = request.scope[SCOPE_KEY]
    return JSONResponse(
        {
            "user": request.user.display_name,
            "identity": request.user.identity,
            "scopes": request.auth.scopes,
            "key_id": key.key_id,
            "key_name": key.name,
        }
    )


@requires("authenticated")
async def members(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


@requires("superpower")
async def superpower(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def echo_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"user": websocket.user.display_name})
    await websocket.close()


def inner_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/whoami", whoami),
            Route("/members", members),
            Route("/superpower", superpower),
            WebSocketRoute("/ws", echo_socket),
        ]
    )


def client_for(app: Any, ip: str = "10.0.0.1", root_path: str = "") -> httpx2.AsyncClient:
    transport = httpx2.ASGITransport(app=app, client=(ip, 1234), root_path=root_path)
    return httpx2.AsyncClient(transport=transport, base_url="http://testserver")


def basic(key_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
