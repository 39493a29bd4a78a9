"""Serve an ASGI app with a real uvicorn on 127.0.0.1 (a free port) in a thread of the test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

START_TIMEOUT = 10.0


@contextmanager
def serving(app: Any, **options: Any) -> Iterator[str]:
    """Yield the base URL of ``app`` served over real HTTP; stop the server on exit.
    ``options`` go to ``uvicorn.Config`` (``http=...``, say)."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="off",
        log_level="warning",
        proxy_headers=False,
        **options,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test-server", daemon=True)
    thread.start()
    try:
        for _ in range(int(START_TIMEOUT / 0.01)):
            if server.started or not thread.is_alive():
                break
            time.sleep(0.01)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=START_TIMEOUT)
