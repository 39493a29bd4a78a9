"""Admin sessions: a random ID in an HttpOnly cookie, only its SHA-256 in the database.

A session ends at logout, after ``settings.session_idle_timeout`` seconds without a
request, ``settings.session_absolute_timeout`` seconds after sign-in, or as soon as its
user is deactivated. Signing in always issues a new ID, so an ID planted in a browser
before sign-in (session fixation) is worth nothing.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.responses import Response

from wfa_auth import ThrottleStore
from wfa_keys.crypto import new_session_id, sha256_hex
from wfa_keys.db import parameterized_sql
from wfa_keys.errors import RateLimited
from wfa_keys.models import Session, User
from wfa_keys.settings import Settings

__all__ = [
    "COOKIE_NAME",
    "REFRESH_INTERVAL",
    "ActiveSession",
    "LoginAttempt",
    "LoginThrottle",
    "clear_session_cookie",
    "cookie_path",
    "end_session",
    "end_user_sessions",
    "load_session",
    "refresh_interval",
    "set_session_cookie",
    "start_session",
]

COOKIE_NAME = "wfa_session"
#: ``last_seen_at`` is written at most this often (seconds), not on every request; never
#: less often than a quarter of the idle timeout (:func:`refresh_interval`).
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


def refresh_interval(settings: Settings) -> float:
    """Seconds after which a request moves ``last_seen_at`` forward.

    At most a quarter of the idle timeout, so that a session used more often than its idle
    timeout is refreshed well before half of it has passed: with a 60 s idle timeout, a
    session used every 20 s lives on (with a fixed 60 s interval it ended at 60 s).
    """
    return min(REFRESH_INTERVAL, settings.session_idle_timeout / 4)


async def load_session(session_id: str, settings: Settings) -> ActiveSession | None:
    """The session with this ID if it is still valid; an expired one is deleted."""
    if not session_id or len(session_id) > _MAX_COOKIE_LENGTH:
        return None
    id_hash = sha256_hex(session_id)
    row = await _session_by_hash(id_hash)
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
    if now - row.last_seen_at >= timedelta(seconds=refresh_interval(settings)):
        await Session.filter(id_hash=id_hash).update(last_seen_at=now)
    return ActiveSession(id_hash=id_hash, user=row.user)


#: By connection and dialect, the lookup of :func:`load_session` as Tortoise writes it, and
#: how its rows split into a session, its user and their organization.
_lookups: dict[tuple[str, str], tuple[str, Any]] = {}


async def _session_by_hash(id_hash: str) -> Session | None:
    """The session with this hash, its user and their organization loaded.

    Every signed-in request looks its session up; building that query through Tortoise
    (a filter, two joins, SQL) cost more than running it, so its SQL is built on first use
    and sent again with each hash, and its rows become models as Tortoise's own make them.
    """
    db = Session._choose_db()
    key = (db.connection_name, db.capabilities.dialect)
    kept = _lookups.get(key)
    if kept is None:
        query: Any = Session.filter(id_hash=id_hash).select_related("user__organization").first()
        sql, parameters = parameterized_sql(query)
        if parameters != [id_hash, 1]:  # pragma: no cover - a Tortoise that writes it otherwise
            found: Session | None = await query
            return found
        kept = _lookups[key] = (sql, query._select_related_idx)
    sql, related = kept
    executor = db.executor_class(model=Session, db=db, select_related_idx=related)
    rows: list[Session] = await executor.execute_select(sql, [id_hash, 1])
    return rows[0] if rows else None


async def end_session(id_hash: str) -> bool:
    """Delete the session with this hash; True when there was one."""
    return await Session.filter(id_hash=id_hash).delete() > 0


async def end_user_sessions(user_id: object) -> int:
    """End every session of a user (deactivated, or given a new password); how many ended."""
    return await Session.filter(user_id=user_id).delete()


def set_session_cookie(
    response: Response, session_id: str, settings: Settings, *, secure: bool
) -> None:
    """Send the session cookie: HttpOnly, SameSite=Lax, Secure over https, and its Path the
    service's root path (``/`` unless ``WFA_ROOT_PATH`` is set), so that other applications
    behind the same proxy host never receive it."""
    response.set_cookie(
        COOKIE_NAME,
        session_id,
        max_age=settings.session_absolute_timeout,
        path=cookie_path(settings.root_path),
        secure=secure,
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, *, secure: bool, root_path: str = "") -> None:
    """Tell the browser to forget the session cookie (set under ``root_path``)."""
    response.delete_cookie(
        COOKIE_NAME, path=cookie_path(root_path), secure=secure, httponly=True, samesite="lax"
    )


def cookie_path(root_path: str) -> str:
    """The session cookie's Path: the root path the service is served under, else ``/``."""
    return root_path or "/"


def _digest(*parts: str | None) -> str:
    """SHA-256 (64 hex characters) of the parts: a fixed size whatever a client sends."""
    joined = "\0".join(part or "" for part in parts)
    # A lone surrogate cannot be encoded as UTF-8 but must still be counted.
    return hashlib.sha256(joined.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """The reservations of one sign-in attempt, to release when it succeeds.

    ``pair_bucket`` is the (email, address) bucket, or the (email, device) bucket of a known
    device, which takes no place on the address (``ip_bucket`` None).
    """

    pair_bucket: str
    ip_bucket: str | None
    email_member: str


class LoginThrottle:
    """Sign-in attempts counted per (email, client IP) and distinct emails per client IP.

    The pair limit slows guessing one account's password; the IP limit slows spraying many
    accounts from one address. Both live in a :class:`wfa_auth.ThrottleStore`, shared by
    every server process when the store is (the database or Redis store), and an attempt
    is *reserved* before its password is checked, so that concurrent attempts can never
    exceed a limit: 150 simultaneous sign-ins with distinct emails from one address make at
    most ``login_max_failures_per_ip`` password checks. A success clears its pair and
    releases its email from the address's bucket; the other emails stay, or one account
    could reset the count of all. Reservations age out after ``login_window`` seconds, so
    nobody is locked out for good, and attempts from other addresses never lock out a
    user's own. Buckets and members are SHA-256 digests: a 60 KB email costs 64 bytes.

    A known device (a valid device cookie of the account tried, :mod:`wfa_keys.devices`) is
    counted in a bucket of its own per (email, device), with the pair's limit, instead of
    the address's buckets: others' failures from a shared address never lock its admin out,
    and whoever holds the cookie gets no more guesses than from a fresh address.
    """

    def __init__(self, settings: Settings, store: ThrottleStore) -> None:
        self.store = store
        self.window = float(settings.login_window)
        self.per_email_ip = settings.login_max_failures_per_email_ip
        self.per_ip = settings.login_max_failures_per_ip

    @staticmethod
    def pair_digest(email: str, client_ip: str | None) -> str:
        """The digest naming an (email, address) pair."""
        return _digest("login-pair", email, client_ip)

    async def reserve(
        self, email: str, client_ip: str | None, *, device_id: str | None = None
    ) -> LoginAttempt:
        """Count an attempt before its password is checked; RateLimited when over a limit.

        ``device_id`` names the browser's known device for this email, if it has one. Errors
        of the store propagate: the caller refuses the sign-in (fails closed).
        """
        attempt_member = secrets.token_hex(16)
        if device_id is not None:
            device_bucket = _digest("login-device", email, device_id)
            wait = await self.store.reserve(
                device_bucket, attempt_member, limit=self.per_email_ip, window=self.window
            )
            if wait is not None:
                raise RateLimited(max(1, math.ceil(wait)))
            return LoginAttempt(device_bucket, None, "")
        pair_bucket = self.pair_digest(email, client_ip)
        wait = await self.store.reserve(
            pair_bucket, attempt_member, limit=self.per_email_ip, window=self.window
        )
        if wait is not None:
            raise RateLimited(max(1, math.ceil(wait)))
        ip_bucket = _digest("login-ip", client_ip)
        email_member = _digest("login-email", email)
        wait = await self.store.reserve(
            ip_bucket, email_member, limit=self.per_ip, window=self.window
        )
        if wait is not None:
            # No password is checked: this attempt must not count against the pair.
            await self.store.release(pair_bucket, attempt_member)
            raise RateLimited(max(1, math.ceil(wait)), per_address=True)
        return LoginAttempt(pair_bucket, ip_bucket, email_member)

    async def succeeded(self, attempt: LoginAttempt) -> None:
        """Forget the pair's (or device's) attempts and this email's place on the address."""
        await self.store.clear(attempt.pair_bucket)
        if attempt.ip_bucket is not None:
            await self.store.release(attempt.ip_bucket, attempt.email_member)
