"""The default :class:`~wfa_auth.base.ErrorResponder` and the JSON answers of the middleware."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.types import Receive, Scope, Send

#: The challenge sent with every 401: API clients authenticate with a Bearer token
#: (or with Basic / the key headers, which carry the Key ID and Key Secret directly).
REALM = "Workflow Automation API"
WWW_AUTHENTICATE = f'Bearer realm="{REALM}"'
WEBSOCKET_POLICY_VIOLATION = 1008


async def send_json(
    send: Send, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> None:
    """Send a complete JSON response that no cache keeps (it may carry an access token)."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
    ]
    raw_headers += [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


class JSONErrorResponder:
    """Answers ``{"error": "<code>", "message": "<sentence>"}``; closes a websocket with 1008.

    The code is stable for programs; the sentence is for people and never carries a secret,
    a stack trace or the text of an exception.
    """

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        status: int,
        error: str,
        message: str,
        headers: Mapping[str, str],
    ) -> None:
        """Send a complete HTTP response (or close a websocket) for the refusal."""
        if scope["type"] == "websocket":
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": WEBSOCKET_POLICY_VIOLATION})
            return
        await send_json(send, status, {"error": error, "message": message}, headers)
