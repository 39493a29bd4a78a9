"""``/healthz`` and ``/livez``: whether this process can serve, and whether it runs at all.

``/healthz`` checks each dependency a request may need and answers 503 when any of them is
down, so that a load balancer sends traffic elsewhere:

- ``database``: a trivial query answers;
- ``change_feed``: this process hears every committed key change (see
  :class:`~wfa_keys.changes.ChangeListener`); while it does not, authentication still fails
  safe, but the process is degraded;
- ``throttle_store``: the shared throttle counters answer (Redis; the database store is the
  database, the memory store cannot be down).

Each check has :data:`CHECK_TIMEOUT` seconds, and the answer never waits longer: a check
still running then is abandoned (a query on a dead link can take far longer to cancel).
``/livez`` answers 200 while the process runs, with no dependency checked, for restarts
that should happen only when the process itself is stuck.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from wfa_keys.changes import ChangeListener
from wfa_keys.db import ping

__all__ = ["CHECK_TIMEOUT", "Health", "livez"]

#: Seconds each dependency has to answer ``/healthz``.
CHECK_TIMEOUT = 2.0
#: ``Retry-After`` of a 503 from ``/healthz``.
RETRY_AFTER = "5"

logger = logging.getLogger("wfa_keys.health")

OK, UNAVAILABLE = "ok", "unavailable"


async def livez(_request: Request) -> JSONResponse:
    """200 while the process runs: no dependency is checked."""
    return JSONResponse({"status": "alive"})


async def _answers(check: Callable[[], Awaitable[Any]], seconds: float) -> bool:
    """True when ``check()`` finishes without an error within ``seconds``."""
    task = asyncio.ensure_future(check())
    # Retrieved here, so that a check abandoned below never logs "exception never retrieved".
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()  # not awaited: cancelling a query on a dead link can take long
        return False
    return not task.cancelled() and task.exception() is None


class Health:
    """The ``/healthz`` endpoint of one process: ``listener`` is its change feed,
    ``throttle_store_ping`` checks the shared throttle store (None: a store that cannot be
    down, the memory one)."""

    def __init__(
        self,
        listener: ChangeListener,
        *,
        throttle_store_ping: Callable[[], Awaitable[Any]] | None = None,
        timeout: float = CHECK_TIMEOUT,
    ) -> None:
        self.listener = listener
        self.throttle_store_ping = throttle_store_ping
        self.timeout = timeout
        self._down: frozenset[str] = frozenset()

    async def check(self) -> dict[str, str]:
        """Each dependency's state: ``ok`` or ``unavailable``."""
        database, store = await asyncio.gather(
            _answers(ping, self.timeout),
            _answers(self.throttle_store_ping, self.timeout)
            if self.throttle_store_ping is not None
            else _true(),
        )
        checks = {
            "database": database,
            "change_feed": self.listener.healthy,
            "throttle_store": store,
        }
        down = frozenset(name for name, up in checks.items() if not up)
        if down != self._down:
            # Once per change of state, not once per probe of every load balancer.
            if down:
                logger.warning("unhealthy: %s unavailable", ", ".join(sorted(down)))
            else:
                logger.info("healthy again")
            self._down = down
        return {name: OK if up else UNAVAILABLE for name, up in checks.items()}

    async def endpoint(self, _request: Request) -> JSONResponse:
        """The answer of ``/healthz``: 200 when every check is ok, else 503."""
        checks = await self.check()
        if all(state == OK for state in checks.values()):
            return JSONResponse({"status": OK, "checks": checks})
        return JSONResponse(
            {"status": UNAVAILABLE, "checks": checks},
            status_code=503,
            headers={"Retry-After": RETRY_AFTER},
        )


async def _true() -> bool:
    return True
