"""Applying :class:`~wfa_auth.Throttling`: attempts reserved before the check, settled after.

Two buckets guard a check of a Key ID and Key Secret from one client IP:

- per (Key ID, IP), each attempt is a random member: at most ``max_failures_per_key_and_ip``
  attempts live in the window, so at most that many secrets are ever checked, however many
  requests arrive at once; a success clears the bucket;
- per IP, each failing Key ID is one member: at most ``max_failing_keys_per_ip`` distinct
  keys fail from one address in the window (spraying); a success releases its member, and
  retries with one key never take more than one place, so they lock out no other key.

A key that succeeded from an IP is *known good* there for the window (a marker in the store,
so every process knows it): when the IP's bucket is full of others' failing keys, a known-good
key's checks are still made, limited by its own (Key ID, IP) bucket only. Behind one shared
address (a NAT, an office) others' failures never lock out a key that works from it, and an
attacker at that address gains nothing: guessing a known-good key's secret stays limited per
(Key ID, IP). Whether a key is known good is asked of the store only when the IP is full,
and only for a Key ID that exists.

Only checks that need the slow hash are counted: a secret already verified in this process
is checked again without the store. While a check runs, its key holds its place on the IP
for a short time only (a failure renews it for the whole window), so that checks that
succeed, or whose process died, never keep an address full for long.

Bucket and member names are fixed-size digests of the inputs, never the inputs, and the
same in every process (they are not keyed by a process secret) so that processes sharing a
store share the counts. A bucket found full is remembered in this process until its retry
time: a flood of retries is then answered from memory, with no store call and no hash.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from wfa_auth._config import Throttling
from wfa_auth.base import ThrottleStore

logger = logging.getLogger("wfa_auth")

_MAX_FULL_BUCKETS = 10_000
_RUNNING_WINDOW = 30.0
T = TypeVar("T")


class Throttled(Exception):
    """A bucket is full: try again in ``retry_after`` whole seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class ThrottleUnavailable(Exception):
    """The throttle store failed: the attempt cannot be counted, so it is not made."""


def _digest(kind: bytes, *parts: str) -> str:
    # BLAKE2b's ``person`` separates the kinds; length prefixes separate the parts.
    digest = hashlib.blake2b(digest_size=20, person=kind)
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(4, "big") + data)
    return digest.hexdigest()


@dataclass(slots=True)
class Attempt:
    """One reserved check of a Key ID from an IP; settle it with success or failure."""

    key_bucket: str
    attempt: str
    ip_bucket: str
    key_member: str
    #: The marker of the key's success from the IP (see :meth:`AttemptThrottle.is_known_good`).
    good_bucket: str = ""
    #: False for a known-good key let through while the IP's bucket was full (no place).
    on_ip: bool = True


#: The one member of a known-good marker bucket.
_GOOD = "ok"


class AttemptThrottle:
    """Reserves attempts in a :class:`~wfa_auth.base.ThrottleStore` as ``throttling`` says."""

    def __init__(
        self, throttling: Throttling, store: ThrottleStore, timer: Callable[[], float]
    ) -> None:
        self.store = store
        self.key_limit = throttling.max_failures_per_key_and_ip
        self.ip_limit = throttling.max_failing_keys_per_ip
        self.window = throttling.window
        # A key's place on its IP while its check runs: short, so that the places of checks
        # that succeed (released at once) or whose process died never fill the bucket long.
        # A failure renews the place for the whole window.
        self.running_window = min(self.window, _RUNNING_WINDOW)
        self.timer = timer
        #: Buckets known to be full, with the timer value until which they stay so.
        self._full: dict[str, float] = {}
        #: IP buckets with checks running in this process, and how many.
        self._running: dict[str, int] = {}

    def check_known_full(self, key_id: str | None, client_ip: str) -> None:
        """Raise Throttled when the bucket of ``key_id`` from ``client_ip`` is known to be
        full, or (without a Key ID) the bucket of ``client_ip``; costs no store call (and no
        digest while nothing is known full).

        With a Key ID, a full IP bucket is not enough to refuse: the key may be known good
        there (:meth:`reserve_key_attempt` asks).
        """
        if not self._full:
            return
        if key_id is None:
            self._check_full([self.ip_bucket(client_ip)])
        else:
            self._check_full([self.key_bucket(key_id, client_ip)])

    def _known_full(self, bucket: str) -> int | None:
        """The whole seconds ``bucket`` is known (in this process) to stay full, or None."""
        until = self._full.get(bucket)
        if until is None:
            return None
        now = self.timer()
        if until > now:
            return max(1, math.ceil(until - now))
        del self._full[bucket]
        return None

    def good_bucket(self, key_id: str, client_ip: str) -> str:
        """The marker bucket of ``key_id``'s success from ``client_ip``."""
        return "wfa:ok:" + _digest(b"wfa-auth-ok", key_id, client_ip)

    async def is_known_good(self, good_bucket: str) -> bool:
        """True when the key succeeded from the IP within the window (any process).

        A reserve with a limit of 0 adds nothing and only renews a member already present:
        a membership test every :class:`~wfa_auth.base.ThrottleStore` can answer atomically.
        A store that cannot is treated as knowing nothing (the IP's limit applies).
        """
        try:
            wait = await self.store.reserve(good_bucket, _GOOD, limit=0, window=self.window)
        except Exception as exc:
            logger.warning("could not look up a known-good key: %s", type(exc).__name__)
            return False
        return wait is None

    def _check_full(self, buckets: list[str]) -> None:
        now = self.timer()
        for bucket in buckets:
            until = self._full.get(bucket)
            if until is not None:
                if until > now:
                    raise Throttled(max(1, math.ceil(until - now)))
                del self._full[bucket]

    def key_bucket(self, key_id: str, client_ip: str) -> str:
        """The bucket of attempts at ``key_id`` from ``client_ip``."""
        return "wfa:key-ip:" + _digest(b"wfa-auth-key-ip", key_id, client_ip)

    def ip_bucket(self, client_ip: str) -> str:
        """The bucket of failing credentials from ``client_ip``."""
        return "wfa:ip:" + _digest(b"wfa-auth-ip", client_ip)

    async def reserve_key_attempt(
        self, key_id: str, client_ip: str, *, key_exists: bool = True
    ) -> Attempt:
        """Reserve one check of ``key_id`` from ``client_ip``, or raise Throttled/Unavailable.

        ``key_exists`` False (no such Key ID) spares the known-good lookup: such a key never
        succeeded anywhere.
        """
        attempt = Attempt(
            key_bucket=self.key_bucket(key_id, client_ip),
            attempt=secrets.token_hex(8),
            ip_bucket=self.ip_bucket(client_ip),
            key_member=_digest(b"wfa-auth-key", key_id),
            good_bucket=self.good_bucket(key_id, client_ip),
        )
        if self._full:
            self._check_full([attempt.key_bucket])
            wait = self._known_full(attempt.ip_bucket)
            if wait is not None:
                if not (key_exists and await self.is_known_good(attempt.good_bucket)):
                    raise Throttled(wait)
                # Known good: limited by its own bucket only, not by others' failures.
                await self._reserve(
                    attempt.key_bucket, attempt.attempt, self.key_limit, self.window, client_ip
                )
                attempt.on_ip = False
                return attempt
        await self._reserve(
            attempt.key_bucket, attempt.attempt, self.key_limit, self.window, client_ip
        )
        try:
            await self._reserve(
                attempt.ip_bucket,
                attempt.key_member,
                self.ip_limit,
                self.running_window,
                client_ip,
                # Full maybe only of checks running here, about to succeed: not remembered.
                remember=not self._running.get(attempt.ip_bucket),
            )
        except Throttled:
            if key_exists and await self.is_known_good(attempt.good_bucket):
                attempt.on_ip = False
                return attempt
            # No check is made: the attempt must not count against the key.
            await self._call(self.store.release(attempt.key_bucket, attempt.attempt))
            raise
        self._running[attempt.ip_bucket] = self._running.get(attempt.ip_bucket, 0) + 1
        return attempt

    def forget(self, attempt: Attempt) -> None:
        """The check was cancelled: stop counting it as running here (no store call)."""
        self._settled(attempt)

    def _settled(self, attempt: Attempt) -> None:
        if not attempt.on_ip:
            return
        left = self._running.pop(attempt.ip_bucket, 1) - 1
        if left:
            self._running[attempt.ip_bucket] = left

    async def failed(self, attempt: Attempt) -> None:
        """The secret did not match: the key holds its place on the IP for the whole window."""
        self._settled(attempt)
        try:
            await self.store.reserve(
                attempt.ip_bucket, attempt.key_member, limit=self.ip_limit, window=self.window
            )
        except Exception as exc:
            # The request is refused anyway, and its attempt is counted against the key.
            logger.warning("could not count a failing key: %s", type(exc).__name__)

    async def succeeded(self, attempt: Attempt) -> None:
        """The secret matched: forget the key's failures, release its place on the IP and
        mark it known good there for the window."""
        self._settled(attempt)
        self._full.pop(attempt.key_bucket, None)
        if attempt.on_ip:
            # Its place frees one: the bucket may no longer be full.
            self._full.pop(attempt.ip_bucket, None)
        try:
            await self.store.clear(attempt.key_bucket)
            await self.store.release(attempt.ip_bucket, attempt.key_member)
            if attempt.good_bucket:
                await self.store.reserve(attempt.good_bucket, _GOOD, limit=1, window=self.window)
        except Exception as exc:
            # The request was checked under the limits; stale counts only throttle more.
            logger.warning("could not clear a throttle bucket: %s", type(exc).__name__)

    async def abandoned(self, attempt: Attempt) -> None:
        """The check could not be made (a store failed): do not count it as a failure."""
        self._settled(attempt)
        try:
            await self.store.release(attempt.key_bucket, attempt.attempt)
        except Exception as exc:
            logger.warning("could not release a throttle slot: %s", type(exc).__name__)

    async def token_failed(self, token_digest: str, client_ip: str) -> None:
        """Count an unknown bearer token as one failing credential of ``client_ip``."""
        member = _digest(b"wfa-auth-token", token_digest)
        await self._reserve(
            self.ip_bucket(client_ip), member, self.ip_limit, self.window, client_ip
        )

    async def _reserve(
        self,
        bucket: str,
        member: str,
        limit: int,
        window: float,
        client_ip: str,
        *,
        remember: bool = True,
    ) -> None:
        wait = await self._call(self.store.reserve(bucket, member, limit=limit, window=window))
        if wait is None:
            return
        if not remember:
            raise Throttled(1)
        if len(self._full) >= _MAX_FULL_BUCKETS:
            del self._full[next(iter(self._full))]
        self._full[bucket] = self.timer() + wait
        # Once per bucket and retry period: the retries that follow are answered from memory.
        logger.warning("throttling failed authentications from %s", client_ip)
        raise Throttled(max(1, math.ceil(wait)))

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except Exception as exc:
            # Fail closed; only the class name is logged (exception texts can carry data).
            logger.error("throttle store unavailable (%s): answering 503", type(exc).__name__)
            raise ThrottleUnavailable from None
