"""``/healthz`` of a real ``serve`` process names each dependency, and says 503 when one is down.

The Redis throttle store is reached through a TCP proxy that can go down, as a Redis
server that crashed or became unreachable does. ``/livez`` answers 200 throughout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest

from support.redis_server import REDIS_URL, redis_or_skip
from support.serving import Server, start_server
from support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e


@pytest.fixture
async def redis_proxy() -> AsyncIterator[TcpProxy]:
    await (await redis_or_skip()).aclose()
    parts = urlsplit(REDIS_URL)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 6379))
    yield proxy
    proxy.close()


async def _health(c: httpx2.AsyncClient, status: int) -> httpx2.Response:
    for _ in range(100):
        response = await c.get("/healthz")
        if response.status_code == status:
            return response
        await asyncio.sleep(0.1)
    pytest.fail(f"/healthz did not answer {status} within 10 s: {response.text}")


async def test_healthz_says_503_while_the_redis_throttle_store_is_down_and_livez_200(
    tmp_path: Path, e2e_database_url: str, redis_proxy: TcpProxy, servers: list[Server]
) -> None:
    redis_path = urlsplit(REDIS_URL).path or "/0"
    store = f"redis://127.0.0.1:{redis_proxy.port}{redis_path}"
    server = start_server(tmp_path, e2e_database_url, env={"WFA_THROTTLE_STORE": store})
    servers.append(server)

    async with httpx2.AsyncClient(base_url=server.base_url, trust_env=False, timeout=30) as c:
        up = await _health(c, 200)
        redis_proxy.go_down()
        down = await _health(c, 503)
        alive = await c.get("/livez")
        redis_proxy.come_back()
        back = await _health(c, 200)

    assert up.json()["checks"] == {
        "database": "ok",
        "change_feed": "ok",
        "throttle_store": "ok",
    }
    assert down.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "change_feed": "ok", "throttle_store": "unavailable"},
    }
    assert down.headers["Retry-After"] == "5"
    assert alive.status_code == 200
    assert back.json()["status"] == "ok"
    # Said once when it went down, once when it came back: not once per probe. (Stopped
    # first, so that every line the process wrote is in its log.)
    server.stop()
    assert server.stderr.count("unhealthy: throttle_store unavailable") == 1
