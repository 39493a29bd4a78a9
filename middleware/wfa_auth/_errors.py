"""Why a request was refused: a stable code for programs, a sentence for people."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from wfa_auth._responses import WWW_AUTHENTICATE
from wfa_auth.base import KeyRecord


@dataclass(frozen=True, slots=True)
class Refusal:
    """One way a request can be refused, with its HTTP status."""

    status: int
    error: str
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def with_message(self, message: str) -> Refusal:
        """The same refusal with another sentence."""
        return Refusal(self.status, self.error, message, self.headers)

    def with_headers(self, **headers: str) -> Refusal:
        """The same refusal with more response headers (e.g. ``Retry_After``)."""
        extra = {name.replace("_", "-"): value for name, value in headers.items()}
        return Refusal(self.status, self.error, self.message, {**self.headers, **extra})


class AuthenticationRefused(Exception):
    """Raised inside the middleware to answer a request with ``refusal``; ``key`` is the
    key refused, when the credentials named a known one (counted in its call analytics)."""

    def __init__(self, refusal: Refusal, key: KeyRecord | None = None) -> None:
        super().__init__(refusal.error)
        self.refusal = refusal
        self.key = key


_CHALLENGE = {"WWW-Authenticate": WWW_AUTHENTICATE}
_TOKEN_CHALLENGE = {"WWW-Authenticate": WWW_AUTHENTICATE + ', error="invalid_token"'}

MISSING_CREDENTIALS = Refusal(
    401,
    "missing_credentials",
    "This call needs an API key: send a Bearer access token, or the Key ID and Key Secret.",
    _CHALLENGE,
)
INVALID_REQUEST = Refusal(
    401, "invalid_request", "The credentials in this request are malformed.", _CHALLENGE
)
# Unknown Key ID, wrong secret, deleted key, another organization's key: one answer for all,
# so that a caller without the secret learns nothing about which Key IDs exist.
INVALID_CREDENTIALS = Refusal(
    401, "invalid_credentials", "The Key ID or the Key Secret is not valid.", _CHALLENGE
)
INVALID_TOKEN = Refusal(
    401, "invalid_token", "The access token is not valid; request a new one.", _TOKEN_CHALLENGE
)
TOKEN_EXPIRED = Refusal(
    401, "token_expired", "The access token has expired; request a new one.", _TOKEN_CHALLENGE
)
KEY_DISABLED = Refusal(401, "key_disabled", "This API key is disabled.", _CHALLENGE)
KEY_EXPIRED = Refusal(401, "key_expired", "This API key has expired.", _CHALLENGE)
KEY_OWNER_INACTIVE = Refusal(
    401,
    "key_owner_inactive",
    "The owner of this API key is no longer an active admin.",
    _CHALLENGE,
)
SUBSCRIPTION_REQUIRED = Refusal(
    403,
    "subscription_required",
    "Your organization does not subscribe to Workflow Automation.",
)
# Only once the secret or token matched: a caller without them learns nothing of the list.
IP_NOT_ALLOWED = Refusal(
    403, "ip_not_allowed", "This API key may not be used from this network address."
)
TOO_MANY_ATTEMPTS = Refusal(
    429, "too_many_attempts", "Too many failed attempts; wait before trying again."
)
SERVICE_UNAVAILABLE = Refusal(
    503,
    "service_unavailable",
    "Authentication is unavailable for a moment; try again shortly.",
)
BAD_TOKEN_REQUEST = Refusal(
    400,
    "invalid_request",
    'The body must be JSON: {"key_id": "...", "key_secret": "..."}.',
)
TOKEN_REQUEST_TOO_LARGE = Refusal(413, "request_too_large", "The request body is too large.")
METHOD_NOT_ALLOWED = Refusal(
    405, "method_not_allowed", "Use POST to request an access token.", {"Allow": "POST"}
)
RATE_LIMITED = Refusal(
    429, "rate_limited", "This API key made too many calls; wait before calling again."
)
QUOTA_EXCEEDED = Refusal(429, "quota_exceeded", "This API key has used its quota for the period.")
