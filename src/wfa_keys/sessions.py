"""Admin sessions: a random ID in an HttpOnly cookie, only its SHA-256 in the database.

A session ends at logout, after ``settings.session_idle_timeout`` seconds without a
request, ``settings.session_absolute_timeout`` seconds after sign-in, or as soon as its
user is deactivated. Signing in always issues a new ID, so an ID planted in a browser
before sign-in (session fixation) is worth nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.responses import Response

from wfa_auth import FailureLimiter
from wfa_keys.crypto import new_session_id, sha256_hex
from wfa_keys.models import Session, User
from wfa_keys.settings import Settings

__all__ = [
    "COOKIE_NAME",
    "REFRESH_INTERVAL",
    "ActiveSession",
    "LoginThrottle",
    "clear_session_cookie",
    "end_session",
    "load_session",
    "set_session_cookie",
    "start_session",
]

COOKIE_NAME = "wfa_session"
#: ``last_seen_at`` is written at most this often (seconds), not on every request.
REFRESH_INTERVAL = 60
# new_session_id() makes 43 characters; anything much longer is not one of ours.
_MAX_COOKIE_LENGTH = 128


@dataclass(frozen=True, slots=True)
class ActiveSession:
    """A valid session and its user (with the user's organization loaded)."""

    id_hash: str
    user: User


def _now() -> datetime:
    return datetime.now(UTC)


async def start_session(user: User, settings: Settings) -> str:
    """Store a new session for ``user`` and return its ID, the only copy in plain text."""
    now = _now()
    session_id = new_session_id()
    await Session.filter(user_id=user.id, expires_at__lte=now).delete()
    await Session.create(
        id_hash=sha256_hex(session_id),
        user_id=user.id,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=settings.session_absolute_timeout),
    )
    return session_id


async def load_session(session_id: str, settings: Settings) -> ActiveSession | None:
    """The session with this ID if it is still valid; an expired one is deleted."""
    if not session_id or len(session_id) > _MAX_COOKIE_LENGTH:
        return None
    id_hash = sha256_hex(session_id)
    row = await Session.filter(id_hash=id_hash).select_related("user__organization").first()
    if row is None:
        return None
    now = _now()
    idle_deadline = row.last_seen_at + timedelta(seconds=settings.session_idle_timeout)
    absolute_deadline = min(
        row.expires_at, row.created_at + timedelta(seconds=settings.session_absolute_timeout)
    )
    if now >= idle_deadline or now >= absolute_deadline or not row.user.is_active:
        await Session.filter(id_hash=id_hash).delete()
        return None
    if now - row.last_seen_at >= timedelta(seconds=REFRESH_INTERVAL):
        await Session.filter(id_hash=id_hash).update(last_seen_at=now)
    return ActiveSession(id_hash=id_hash, user=row.user)


async def end_session(id_hash: str) -> bool:
    """Delete the session with this hash; True when there was one."""
    return await Session.filter(id_hash=id_hash).delete() > 0


def set_session_cookie(
    response: Response, session_id: str, settings: Settings, *, secure: bool
) -> None:
    """Send the session cookie: HttpOnly, SameSite=Lax, Path=/, Secure over https."""
    response.set_cookie(
        COOKIE_NAME,
        session_id,
        max_age=settings.session_absolute_timeout,
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, *, secure: bool) -> None:
    """Tell the browser to forget the session cookie."""
    response.delete_cookie(COOKIE_NAME, path="/", secure=secure, httponly=True, samesite="lax")


class LoginThrottle:
    """Failed sign-ins counted per (email, client IP) and per client IP.

    The pair limit slows guessing one account's password; the IP limit slows spraying
    many accounts from one address. Failures age out of the window, so nobody is locked
    out for good, and failures from other addresses never lock out a user's own address.

    An attempt counts against its pair when it starts (:meth:`start_attempt`), so that
    parallel guesses cannot all pass the check before the first one fails; a success
    forgets the pair's count. The IP counts only attempts that failed.
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_email_ip = FailureLimiter(
            limit=settings.login_max_failures_per_email_ip,
            window=settings.login_window,
            clock=clock,
        )
        self._per_ip = FailureLimiter(
            limit=settings.login_max_failures_per_ip, window=settings.login_window, clock=clock
        )

    def retry_after(self, email: str, client_ip: str | None) -> int | None:
        """Whole seconds until this email may be tried again from this IP, or None for now."""
        waits = [
            self._per_email_ip.retry_after(("email-ip", email, client_ip)),
            self._per_ip.retry_after(("ip", client_ip)),
        ]
        return max((wait for wait in waits if wait is not None), default=None)

    def start_attempt(self, email: str, client_ip: str | None) -> None:
        """Count an attempt against its (email, IP) pair before the password is checked."""
        self._per_email_ip.record_failure(("email-ip", email, client_ip))

    def record_failure(self, client_ip: str | None) -> None:
        """Count one failed sign-in against the IP (the pair counted it at the start)."""
        self._per_ip.record_failure(("ip", client_ip))

    def record_success(self, email: str, client_ip: str | None) -> None:
        """Forget this pair's failures; the IP's count stays, or one account could reset it."""
        self._per_email_ip.reset(("email-ip", email, client_ip))
