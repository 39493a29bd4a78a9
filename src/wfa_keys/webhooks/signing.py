"""Signing secrets and signatures in the Standard Webhooks format.

A secret is ``whsec_`` followed by the base64 of 32 random bytes; a signature is
``v1,`` followed by the base64 of HMAC-SHA256(secret, ``{webhook-id}.{webhook-timestamp}.{body}``),
which receivers check with the ``standardwebhooks`` library (or ``wfa_auth.webhooks``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["SECRET_PREFIX", "new_message_id", "new_signing_secret", "sign"]

SECRET_PREFIX = "whsec_"  # noqa: S105 -- the format's prefix, not a secret


def new_signing_secret() -> str:
    """A new endpoint secret (256 random bits)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def new_message_id() -> str:
    """A ``webhook-id``: unique per message, the same on each attempt to deliver it."""
    return "msg_" + secrets.token_hex(16)


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header of a message sent at ``timestamp`` (Unix seconds)."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()
