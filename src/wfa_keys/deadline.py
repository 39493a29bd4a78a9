"""The answer a request gets when the service cannot give its own in time.

A database that stops answering without closing anything would hold a request for as long
as the network stack lets it; every request must start its answer within
``WFA_REQUEST_TIMEOUT`` seconds instead. :class:`~wfa_keys.logs.RequestLogMiddleware`, which
wraps every request already, puts it under a :class:`DeadlineWatch` (one timer for every
request in flight); when the request's time passes before the app has answered, it sends
:meth:`Deadline.response` and drops whatever the app sends later (the app's own work ends in
the background, bounded by ``WFA_DATABASE_TIMEOUT``).

The answer is a 503 with ``Retry-After`` and a code that says unavailable, in the shape the
client of that path reads: GraphQL's error shape on the GraphQL endpoint, the API's
``{"error": "service_unavailable"}`` everywhere else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Scope

from wfa_auth import route_path

__all__ = ["UNAVAILABLE_MESSAGE", "Deadline", "DeadlineWatch"]

UNAVAILABLE_MESSAGE = "The service is unavailable. Try again later."


@dataclass(frozen=True, slots=True)
class Deadline:
    """Requests must start their answer within ``seconds``; then they get :meth:`response`."""

    seconds: float
    #: The ``Retry-After`` of the answer, in seconds.
    retry_after: int = 5
    #: Where GraphQL is served (below the root path): its clients read GraphQL errors.
    graphql_path: str = "/graphql"

    def response(self, scope: Scope) -> Response:
        """The 503 for a request of ``scope`` that was not answered in time."""
        body: dict[str, Any]
        if route_path(scope) == self.graphql_path:
            body = {
                "data": None,
                "errors": [
                    {
                        "message": UNAVAILABLE_MESSAGE,
                        "extensions": {"code": "SERVICE_UNAVAILABLE"},
                    }
                ],
            }
        else:
            body = {"error": "service_unavailable", "message": UNAVAILABLE_MESSAGE}
        return Response(
            orjson.dumps(body),
            status_code=503,
            media_type="application/json",
            headers={"Retry-After": str(self.retry_after)},
        )


class DeadlineWatch:
    """The requests in flight under one :class:`Deadline`, watched by one timer for them all.

    A timer of its own per request (``loop.call_later``, then ``cancel``) costs a warm API
    call several thousand instructions. Every request has the same deadline after its start,
    so the requests in flight, kept in the order they started, expire in that order: one
    timer set for the oldest is enough. It is not cancelled when that request ends; when it
    fires, it expires the requests whose time has passed and is set again for the oldest
    left, if any. Under steady traffic it fires about once per ``Deadline.seconds``.
    Times are ``time.monotonic()`` seconds, the clock of asyncio's and uvloop's timers.
    """

    __slots__ = ("_loop", "_pending", "_timer", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        # Insertion-ordered: the oldest request first. Each maps to its start.
        self._pending: dict[Callable[[], None], float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, expire: Callable[[], None], started: float) -> None:
        """Call ``expire`` unless :meth:`discard` is called within ``seconds`` of ``started``
        (a ``time.monotonic()`` reading taken now)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A new event loop (tests run one each): the old loop's timer and requests are gone.
            self._loop, self._timer = loop, None
            self._pending.clear()
        self._pending[expire] = started
        if self._timer is None:
            self._timer = loop.call_at(started + self.seconds, self._fire)

    def discard(self, expire: Callable[[], None]) -> None:
        """The request of ``expire`` has started its answer or ended: no expiry for it."""
        self._pending.pop(expire, None)

    def _fire(self) -> None:
        self._timer = None
        now = time.monotonic()
        expired = []
        for expire, started in self._pending.items():
            if started + self.seconds > now:
                assert self._loop is not None  # set by add(), which put something here
                self._timer = self._loop.call_at(started + self.seconds, self._fire)
                break
            expired.append(expire)
        for expire in expired:
            del self._pending[expire]
            expire()
