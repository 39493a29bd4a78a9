"""``POST /api/v1/keys/verify``: other services check this organization's keys through us.

A service that cannot read our database (an app in another language, another ASGI app with
``wfa_auth.RemoteAuthority``) sends the credentials its caller presented, and the address it
saw, with a key of its own that has the ``keys:verify`` scope. The check is the middleware's
own (:meth:`wfa_auth._authenticator.Authenticator.check`): the same record cache, argon2
limiter, dummy verification for unknown Key IDs, throttle store and limits, and the same
last-use recording, so a key used only through remote apps keeps a true ``lastUsedAt`` and
``lastUsedIp`` (and is not disabled as inactive).

Every well-formed request is answered 200 ``{"valid", "code", "key", "cache_ttl"}``:

- ``code`` is one of :data:`CODES`; unknown Key ID, wrong secret, unknown token and another
  organization's key are all ``INVALID_CREDENTIALS``, with comparable timing;
- ``key`` is present only when the secret or token matched;
- ``cache_ttl`` is how long a ``VALID`` answer may be reused without asking again (0 for
  any other), bounded by the key's expiry, the token's and the end of a grace period;
- ``reason`` is the middleware's own error code (``key_owner_inactive``, ``token_expired``,
  ...), so a remote middleware answers exactly as a local one would; ``retry_after`` comes
  with ``THROTTLED``.

Failures are throttled by the reported ``client_ip`` within the calling key: one remote app
cannot lock out another's clients, and a remote app's client is throttled as if it called
us directly.

Each verification is one call of the verified key, metered as a direct call is: its rate
limit and quota admit or refuse it (``THROTTLED`` with ``reason`` ``rate_limited`` or
``quota_exceeded`` and ``retry_after``), and its outcome is counted in the key's usage
(``success``, ``insufficientScope``, ``ipNotAllowed``, ``disabled``, ``expired``,
``invalidSecret``, ``rateLimited``, ``quotaExceeded``), for keys of the caller's
organization only. A key with a rate limit or a quota is answered ``cache_ttl`` 0: a remote
app asks again for each of its calls, so that each is counted and limited. The verifying
key's own call is counted as its own, never as the verified key's.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from wfa_auth import SCOPE_KEY, ApiKeyUser, BearerCredentials, KeyCredentials, KeyRecord
from wfa_auth._authenticator import Authenticator
from wfa_auth._calls import INSUFFICIENT_SCOPE, OUTCOME_OF_ERROR, SUCCESS, CallRecorder
from wfa_auth._errors import AuthenticationRefused, Refusal
from wfa_auth._limits import Limiter
from wfa_auth._scopes import insufficient_scope
from wfa_keys.deadline import UNAVAILABLE_MESSAGE
from wfa_keys.proxy import parse_ip
from wfa_keys.scopes import VERIFY_SCOPE

logger = logging.getLogger("wfa_keys.verification")

__all__ = ["CODES", "MAX_CACHE_TTL", "MAX_VERIFY_BODY", "KeyVerification"]

#: The answers' codes, for programs.
CODES = (
    "VALID",
    "INVALID_CREDENTIALS",
    "DISABLED",
    "EXPIRED",
    "IP_NOT_ALLOWED",
    "INSUFFICIENT_SCOPE",
    "THROTTLED",
)
#: A ``VALID`` answer is reused by the caller for at most this many seconds (the change
#: stream drops it earlier when the key changes).
MAX_CACHE_TTL = 60
MAX_VERIFY_BODY = 8192
_MAX_SCOPES = 50
_MAX_TEXT = 512

# The middleware's refusal codes, as the verify endpoint's codes.
_CODES_BY_ERROR = {
    "invalid_credentials": "INVALID_CREDENTIALS",
    "invalid_token": "INVALID_CREDENTIALS",
    "invalid_request": "INVALID_CREDENTIALS",
    "key_disabled": "DISABLED",
    "key_owner_inactive": "DISABLED",
    "subscription_required": "DISABLED",
    "key_expired": "EXPIRED",
    "token_expired": "EXPIRED",
    "ip_not_allowed": "IP_NOT_ALLOWED",
    "too_many_attempts": "THROTTLED",
    "rate_limited": "THROTTLED",
    "quota_exceeded": "THROTTLED",
}
# The middleware's finer code, for a remote middleware to answer as a local one would; never
# for INVALID_CREDENTIALS, one answer whatever was wrong.
_REASONS = frozenset(e for e, code in _CODES_BY_ERROR.items() if code != "INVALID_CREDENTIALS")


class _Malformed(ValueError):
    """The body is not a verification request; the message says what is expected."""


def _bad_request(message: str) -> Response:
    body = json.dumps({"error": "invalid_request", "message": message}).encode()
    return Response(body, status_code=400, media_type="application/json")


def _answer(
    code: str,
    *,
    key: KeyRecord | None = None,
    cache_ttl: int = 0,
    reason: str | None = None,
    retry_after: str | None = None,
) -> Response:
    body: dict[str, Any] = {
        "valid": code == "VALID",
        "code": code,
        "key": None if key is None else _key_json(key),
        "cache_ttl": cache_ttl,
    }
    if reason is not None:
        body["reason"] = reason
    headers = {"Cache-Control": "no-store"}
    if retry_after is not None:
        body["retry_after"] = int(retry_after)
        headers["Retry-After"] = retry_after
    return Response(
        json.dumps(body, separators=(",", ":")).encode(),
        media_type="application/json",
        headers=headers,
    )


def _key_json(key: KeyRecord) -> dict[str, Any]:
    """What a verifying service may know of a key: never its hash."""
    return {
        "key_id": key.key_id,
        "name": key.name,
        "organization_id": key.organization_id,
        "organization_name": key.organization_name,
        "owner_id": key.owner_id,
        "owner_email": key.owner_email,
        "scopes": list(key.scopes),
        "allowed_cidrs": list(key.allowed_cidrs),
        "expires_at": None if key.expires_at is None else key.expires_at.isoformat(),
    }


def _text(payload: dict[str, Any], name: str) -> str | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise _Malformed(f"{name} must be a string.")
    return value


def _parse(body: bytes) -> tuple[KeyCredentials | BearerCredentials, Sequence[str], str | None]:
    """The credentials, the required scopes and the client address of a request body."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        payload = None
    if not isinstance(payload, dict):
        raise _Malformed(
            'The body must be JSON: {"key_id": "...", "key_secret": "..."} or {"token": "..."}.'
        )
    key_id, key_secret, token = (_text(payload, n) for n in ("key_id", "key_secret", "token"))
    credentials: KeyCredentials | BearerCredentials
    if token is not None and key_id is None and key_secret is None:
        credentials = BearerCredentials(token)
    elif token is None and key_id is not None and key_secret is not None:
        credentials = KeyCredentials(key_id, key_secret)
    else:
        raise _Malformed("Send either key_id and key_secret, or token.")
    required = payload.get("required_scopes", [])
    if (
        not isinstance(required, list)
        or len(required) > _MAX_SCOPES
        or not all(isinstance(s, str) and len(s) <= _MAX_TEXT for s in required)
    ):
        raise _Malformed("required_scopes must be a list of scope names.")
    client_ip = _text(payload, "client_ip")
    if client_ip is not None:
        parsed = parse_ip(client_ip)
        if parsed is None:
            raise _Malformed("client_ip must be an IPv4 or IPv6 address.")
        client_ip = parsed
    return credentials, required, client_ip


class KeyVerification:
    """The verify endpoint; :attr:`authenticator`, :attr:`limiter` and :attr:`calls` are the
    service middleware's own, set once the middleware is built (:func:`wfa_keys.api.create_api`):
    a verification is checked, limited and counted as a direct call is.

    ``settle``, when given, applies every change committed so far to this process's caches
    before a check (the change listener's catch-up). A remote app that heard of a change on
    the stream (served by any process) and asks again must never get an answer from a cache
    of this process that has not applied that change yet: it would cache that for
    ``cache_ttl`` seconds.
    """

    def __init__(self, settle: Callable[[], Awaitable[None]] | None = None) -> None:
        self.authenticator: Authenticator | None = None
        #: The verified keys' rate limits and quotas (None: not enforced, tests only).
        self.limiter: Limiter | None = None
        #: The verified keys' usage analytics (None: not counted).
        self.calls: CallRecorder | None = None
        self.settle = settle

    async def verify(self, request: Request) -> Response:
        """Check the credentials in the body for the caller's organization."""
        if VERIFY_SCOPE not in request.auth.scopes:
            return insufficient_scope(VERIFY_SCOPE)
        caller: KeyRecord = request.scope[SCOPE_KEY]
        body = await request.body()
        if len(body) > MAX_VERIFY_BODY:
            return _bad_request("The body is too large.")
        try:
            credentials, required, client_ip = _parse(body)
        except _Malformed as exc:
            return _bad_request(str(exc))
        authenticator = self.authenticator
        assert authenticator is not None, "create_api sets it"
        client = None if client_ip is None else (client_ip, 0)
        if self.settle is not None:
            try:
                await self.settle()
            except Exception as exc:  # the database did not answer: fail closed
                logger.warning("could not apply the latest changes (%s)", type(exc).__name__)
                return _unavailable()
        try:
            user, seconds = await authenticator.check(
                credentials,
                client,
                organization_id=caller.organization_id,
                # Counted within the calling key: another caller's reports never mix in.
                throttle_as=f"{caller.key_id}|{client_ip or '-'}",
            )
            if user.limits is not None and self.limiter is not None:
                admitted = self.limiter.admit(user.limits)
                if admitted is None:
                    admitted = await self.limiter.acquire(user.limits)
                if isinstance(admitted, Refusal):
                    raise AuthenticationRefused(admitted, user.key)
        except AuthenticationRefused as refused:
            self._count_refused(refused, caller.organization_id)
            return _refused(refused.refusal)
        return self._valid(user, seconds, required)

    def _count_refused(self, refused: AuthenticationRefused, organization_id: str) -> None:
        """Count a refusal for the key it names, if it is one of the caller's organization
        (a wrong secret for another organization's key is no business of either)."""
        key = refused.key
        if self.calls is None or key is None or key.organization_id != organization_id:
            return
        outcome = OUTCOME_OF_ERROR.get(refused.refusal.error)
        if outcome is not None:
            self.calls.count(key.key_id, key.organization_id, outcome)

    def _valid(self, user: ApiKeyUser, seconds: float, required: Sequence[str]) -> Response:
        key = user.key
        missing = any(scope not in key.scopes for scope in required)
        if self.calls is not None:
            outcome = INSUFFICIENT_SCOPE if missing else SUCCESS
            self.calls.count(key.key_id, key.organization_id, outcome)
        if missing:
            return _answer("INSUFFICIENT_SCOPE", key=key)
        # A limited key's every call must come back here to be counted against its limits.
        cache_ttl = (
            0 if user.limits is not None else max(0, min(MAX_CACHE_TTL, math.floor(seconds)))
        )
        return _answer("VALID", key=key, cache_ttl=cache_ttl)


def _unavailable() -> Response:
    return Response(
        json.dumps({"error": "service_unavailable", "message": UNAVAILABLE_MESSAGE}).encode(),
        status_code=503,
        media_type="application/json",
        headers={"Retry-After": "5"},
    )


def _refused(refusal: Refusal) -> Response:
    """The verdict on refused credentials; a failed store is no verdict (fail closed)."""
    code = _CODES_BY_ERROR.get(refusal.error)
    if code is None:
        # The store, the throttle store or the counter store failed, as the middleware does.
        return Response(
            json.dumps({"error": refusal.error, "message": refusal.message}).encode(),
            status_code=refusal.status,
            media_type="application/json",
            headers=dict(refusal.headers),
        )
    return _answer(
        code,
        reason=refusal.error if refusal.error in _REASONS else None,
        retry_after=refusal.headers.get("Retry-After") if code == "THROTTLED" else None,
    )
