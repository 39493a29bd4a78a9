"""Verifying signed webhooks from wfa-keys (the Standard Webhooks scheme), standard library only.

A receiver passes the raw request body, its headers and the endpoint's ``whsec_`` secret::

    from wfa_auth.webhooks import WebhookVerificationError, verify

    try:
        event = verify(body, request.headers, secret)
    except WebhookVerificationError:
        return Response(status_code=400)

:func:`verify` checks that ``webhook-timestamp`` is within ``tolerance`` seconds of now (a
captured delivery cannot be replayed later) and that one of the ``v1,`` signatures in
``webhook-signature`` is the HMAC-SHA256 of ``{webhook-id}.{webhook-timestamp}.{body}``,
compared in constant time; then it returns the parsed JSON. The ``standardwebhooks`` library
accepts the same deliveries. Deduplicate on ``webhook-id``: a delivery may come twice.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULT_TOLERANCE", "WebhookVerificationError", "sign", "verify"]

#: Seconds a delivery's timestamp may be off from the receiver's clock, either way.
DEFAULT_TOLERANCE = 300
_PREFIX = "whsec_"


class WebhookVerificationError(Exception):
    """The delivery is not signed with this secret, is too old or too new, or is malformed."""


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the secret is not a whsec_ secret") from None


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,`` signature of a message (for tests of a receiver)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return (
        "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()
    )


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        # A plain dict with other capitalization (a Mapping that is not case-insensitive).
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    if not value:
        raise WebhookVerificationError(f"the {name} header is missing")
    return value


def verify(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> Any:
    """The delivery's JSON payload, once its signature and timestamp are checked."""
    payload = body.encode() if isinstance(body, str) else body
    message_id = _header(headers, "webhook-id")
    raw_timestamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    try:
        timestamp = int(raw_timestamp)
    except ValueError:
        raise WebhookVerificationError("the webhook-timestamp header is not a number") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError("the webhook-timestamp is too old or too new")
    expected = sign(secret, message_id, timestamp, payload).encode()
    for candidate in signatures.split():
        # Every candidate is compared, each in constant time.
        if candidate.startswith("v1,") and hmac.compare_digest(candidate.encode(), expected):
            try:
                return json.loads(payload)
            except ValueError:
                raise WebhookVerificationError("the body is not JSON") from None
    raise WebhookVerificationError("no signature matches")
