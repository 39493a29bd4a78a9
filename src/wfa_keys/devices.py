"""Known devices: a signed cookie that tells an admin's own browser from everyone else.

Behind one shared address (an office, a NAT) the sign-in limit of the address trips on
everybody's failures; a browser an admin already signed in from carries a *device cookie*
and is throttled on its own instead (:class:`wfa_keys.sessions.LoginThrottle`), the way
OWASP's "device cookies" and GitHub's or Okta's known-device rules work. The cookie is
``<user id>.<device id>.<expiry>.<HMAC-SHA256>``: it names the user and expires; the HMAC
key is a random secret in the database (``server_secret``), so that every process signs and
checks alike and nobody without the database can forge one. It proves only "this browser
signed in as this user before": the password is still checked, and failures with it are
limited per (email, device) as tightly as per (email, address).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.responses import Response
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from wfa_keys.models import ServerSecret, User
from wfa_keys.settings import Settings

__all__ = ["DEVICE_COOKIE_NAME", "DeviceCookies", "KnownDevice", "set_device_cookie"]

logger = logging.getLogger("wfa_keys.devices")

DEVICE_COOKIE_NAME = "wfa_device"
#: The name of the HMAC key's row in ``server_secret``.
SECRET_NAME = "device-cookie"  # noqa: S105  # a row name, not a secret
# A UUID, 22 characters of device ID, a timestamp and 43 of MAC: anything longer is not ours.
_MAX_COOKIE_LENGTH = 160


@dataclass(frozen=True, slots=True)
class KnownDevice:
    """A valid device cookie: whose browser it is, its ID, and until when (Unix seconds)."""

    user_id: str
    device_id: str
    expires_at: int


class DeviceCookies:
    """Issues and checks device cookies with the shared secret (read once per process)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.lifetime = settings.device_cookie_days * 86400
        self._clock = clock
        self._key: bytes | None = None

    @property
    def enabled(self) -> bool:
        """False when ``WFA_DEVICE_COOKIE_DAYS`` is 0: no cookie is issued or believed."""
        return self.lifetime > 0

    async def issue(self, user: User, known: KnownDevice | None = None) -> str:
        """A cookie value for ``user``'s browser, keeping the device ID of ``known`` (the
        browser's valid cookie for the same user) and starting a new lifetime."""
        device_id = known.device_id if known is not None else secrets.token_urlsafe(16)
        expires_at = int(self._clock()) + self.lifetime
        payload = f"{user.id}.{device_id}.{expires_at}"
        return f"{payload}.{self._mac(await self._secret(), payload)}"

    async def read(self, value: str | None) -> KnownDevice | None:
        """The device the cookie names, when it is ours, intact and not expired; else None."""
        if not self.enabled or not value or len(value) > _MAX_COOKIE_LENGTH:
            return None
        parts = value.split(".")
        if len(parts) != 4 or not parts[2].isdigit():
            return None
        user_id, device_id, expires, mac = parts
        try:
            key = await self._secret()
        except Exception as exc:  # no secret, no trust: the sign-in is throttled as usual
            logger.warning("device cookies unavailable (%s)", type(exc).__name__)
            return None
        expected = self._mac(key, f"{user_id}.{device_id}.{expires}")
        if not hmac.compare_digest(expected.encode(), mac.encode("utf-8", "surrogatepass")):
            return None
        if int(expires) <= self._clock():
            return None
        return KnownDevice(user_id, device_id, int(expires))

    @staticmethod
    def _mac(key: bytes, payload: str) -> str:
        digest = hmac.new(key, payload.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    async def _secret(self) -> bytes:
        if self._key is None:
            self._key = (await shared_secret(SECRET_NAME)).encode()
        return self._key


async def shared_secret(name: str) -> str:
    """The random secret stored as ``name``, created by the first process that asks.

    Two processes asking at once both try to insert; the loser's insert fails on the primary
    key (in a savepoint, so that PostgreSQL's transaction carries on) and both read the row
    that won.
    """
    row = await ServerSecret.get_or_none(name=name)
    if row is not None:
        return row.value
    try:
        async with in_transaction():
            await ServerSecret.create(name=name, value=secrets.token_urlsafe(48))
    except IntegrityError:
        pass
    return (await ServerSecret.get(name=name)).value


def set_device_cookie(response: Response, value: str, settings: Settings, *, secure: bool) -> None:
    """Send the device cookie: HttpOnly, SameSite=Lax, Path=/, Secure over https."""
    response.set_cookie(
        DEVICE_COOKIE_NAME,
        value,
        max_age=settings.device_cookie_days * 86400,
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )
