"""The answer a request gets when the service cannot give its own in time.

A database that stops answering without closing anything would hold a request for as long
as the network stack lets it; every request must start its answer within
``WFA_REQUEST_TIMEOUT`` seconds instead. :class:`~wfa_keys.logs.RequestLogMiddleware`, which
wraps every request already, starts a timer; when it fires before the app has answered, it
sends :meth:`Deadline.response` and drops whatever the app sends later (the app's own work
ends in the background, bounded by ``WFA_DATABASE_TIMEOUT``).

The answer is a 503 with ``Retry-After`` and a code that says unavailable, in the shape the
client of that path reads: GraphQL's error shape on the GraphQL endpoint, the API's
``{"error": "service_unavailable"}`` everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Scope

from wfa_auth import route_path

__all__ = ["UNAVAILABLE_MESSAGE", "Deadline"]

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
