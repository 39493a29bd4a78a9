"""Argon2 work off the event loop, behind one limiter for the whole service.

An argon2 hash or verify takes tens of milliseconds of CPU (more with the default
parameters) and releases the GIL. Run through ``asyncio.to_thread`` it lands on the default
executor, up to ``cores + 4`` at once: eight concurrent ``createApiKey`` calls took
``/healthz`` from 2,200 to 46 requests per second. Every argon2 call of the service layer
goes through :func:`run_argon2` instead, which admits :data:`ARGON2_CONCURRENCY` at a time
per event loop and queues the rest, so the loop always keeps a core.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
from anyio import CapacityLimiter

__all__ = ["ARGON2_CONCURRENCY", "argon2_limiter", "run_argon2"]

#: Argon2 computations running at once in one process (the middleware uses 2 as well).
ARGON2_CONCURRENCY = 2

T = TypeVar("T")

# One limiter per event loop: a limiter is bound to the loop that first waits on it, and the
# CLI (asyncio.run per command) and the tests start several loops in one process.
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


def argon2_limiter() -> CapacityLimiter:
    """The limiter that every argon2 call of this process's running event loop shares."""
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = CapacityLimiter(ARGON2_CONCURRENCY)
    return limiter


async def run_argon2(work: Callable[..., T], *args: object) -> T:
    """``work(*args)`` in a worker thread, at most :data:`ARGON2_CONCURRENCY` at a time."""
    return await anyio.to_thread.run_sync(work, *args, limiter=argon2_limiter())
