"""Signing in and out of the admin API, for any face (GraphQL, the console).

:meth:`SignIn.sign_in` holds the whole flow: the throttle reservation *before* the password
check (so the limits also cap argon2 work, whatever the concurrency), a dummy hash for
unknown emails (the same time for every answer), the rehash of an outdated password hash,
a new session ID on every sign-in (never promoting one planted before: session fixation)
and the audit event. Every refusal is a :mod:`wfa_keys.errors` error: ``SignInFailed`` in
the same words for every reason, ``RateLimited``, or ``Unavailable`` when the throttle
store does not answer (no password is checked then: fail closed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tortoise.transactions import in_transaction

from wfa_auth import Argon2Verifier, ThrottleStore
from wfa_keys import validation
from wfa_keys.audit import record_event, record_throttled_sign_in
from wfa_keys.devices import DeviceCookies, KnownDevice
from wfa_keys.errors import RateLimited, SignInFailed, Unavailable
from wfa_keys.hashing import run_argon2
from wfa_keys.models import AuditAction, User
from wfa_keys.sessions import ActiveSession, LoginAttempt, LoginThrottle, end_session, start_session
from wfa_keys.settings import Settings
from wfa_keys.users import normalize_email

__all__ = ["SignIn", "SignedIn"]

logger = logging.getLogger("wfa_keys.signin")

# Checked against the dummy hash in place of a password that cannot be encoded (a lone
# surrogate), so that such an attempt takes as long as any other failure.
_UNENCODABLE = "\ufffd"


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A successful sign-in: the user (organization loaded), the new session ID and the
    browser's device cookie (None when device cookies are off).

    The session ID exists in plain text only here: the caller puts it in a cookie.
    """

    user: User
    session_id: str
    device_cookie: str | None = None

    def __repr__(self) -> str:
        return f"SignedIn(user={self.user.email!r}, session_id='***', device_cookie='***')"


def _encodable(password: str) -> bool:
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class SignIn:
    """Sign-in and sign-out with throttling, rehashing, session rotation and auditing."""

    def __init__(self, settings: Settings, hasher: Argon2Verifier, store: ThrottleStore) -> None:
        self.settings = settings
        self.hasher = hasher
        self.throttle = LoginThrottle(settings, store)
        self.devices = DeviceCookies(settings)

    async def sign_in(
        self,
        email: str,
        password: str,
        *,
        client_ip: str | None,
        current_session: ActiveSession | None = None,
        request_id: str | None = None,
        device_cookie: str | None = None,
    ) -> SignedIn:
        """Check the credentials and start a new session (ending ``current_session``).

        ``device_cookie`` is the browser's device cookie, if any: valid and naming the user
        of ``email``, it makes the attempt count against that device rather than the
        address (:class:`~wfa_keys.sessions.LoginThrottle`).
        """
        address = normalize_email(email)
        lookup = validation.login_email(address)
        user = (
            None
            if lookup is None
            else await User.filter(email=lookup).select_related("organization").first()
        )
        known = await self.devices.read(device_cookie) if device_cookie else None
        if known is not None and (user is None or str(user.id) != known.user_id):
            known = None  # another account's device: this email is tried as from anywhere
        attempt = await self._reserve(address, user, client_ip, request_id, known)
        stored_hash = user.password_hash if user is not None else self.hasher.dummy_hash
        if _encodable(password):
            matches = await run_argon2(self.hasher.verify, stored_hash, password)
        else:
            # Never matches; still costs one verification, like any wrong password.
            await run_argon2(self.hasher.verify, self.hasher.dummy_hash, _UNENCODABLE)
            matches = False
        if user is None or not matches or not user.is_active:
            async with in_transaction():
                await record_event(
                    AuditAction.LOGIN_FAILED,
                    organization_id=user.organization_id if user is not None else None,
                    actor=user,
                    client_ip=client_ip,
                )
            raise SignInFailed()
        try:
            await self.throttle.succeeded(attempt)
        except Exception:
            # The credentials are right; the reservations age out of the window anyway.
            logger.exception("could not release sign-in reservations (request %s)", request_id)
        new_hash = None
        if self.hasher.needs_rehash(user.password_hash):
            new_hash = await run_argon2(self.hasher.hash, password)
        async with in_transaction():
            if new_hash is not None:
                await User.filter(id=user.id).update(password_hash=new_hash)
                user.password_hash = new_hash
            if current_session is not None:
                await end_session(current_session.id_hash)
            session_id = await start_session(user, self.settings)
            await record_event(
                AuditAction.LOGIN_SUCCEEDED,
                organization_id=user.organization_id,
                actor=user,
                client_ip=client_ip,
            )
        device = await self._device_cookie(user, known, request_id)
        return SignedIn(user, session_id, device)

    async def _device_cookie(
        self, user: User, known: KnownDevice | None, request_id: str | None
    ) -> str | None:
        if not self.devices.enabled:
            return None
        try:
            return await self.devices.issue(user, known)
        except Exception:
            # Signed in all the same; the browser is simply not a known device yet.
            logger.exception("could not issue a device cookie (request %s)", request_id)
            return None

    async def _reserve(
        self,
        address: str,
        user: User | None,
        client_ip: str | None,
        request_id: str | None,
        known: KnownDevice | None,
    ) -> LoginAttempt:
        device_id = known.device_id if known is not None else None
        try:
            return await self.throttle.reserve(address, client_ip, device_id=device_id)
        except RateLimited as limited:
            # Refused without checking the password: the limit also caps argon2 work.
            await record_throttled_sign_in(
                email=address,
                user=user,
                client_ip=client_ip,
                window=self.throttle.window,
                per_address=limited.per_address,
            )
            raise
        except Exception:
            logger.exception("throttle store failed (request %s)", request_id)
            raise Unavailable() from None

    async def sign_out(self, session: ActiveSession | None, *, client_ip: str | None) -> bool:
        """End ``session``; True when there was one to end (and audited)."""
        if session is None:
            return False
        async with in_transaction():
            ended = await end_session(session.id_hash)
            if ended:
                await record_event(
                    AuditAction.LOGOUT,
                    organization_id=session.user.organization_id,
                    actor=session.user,
                    client_ip=client_ip,
                )
        return ended
