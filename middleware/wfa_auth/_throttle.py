"""Counting failures per client so that guessing is slow and nobody is locked out for good."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Hashable


class FailureLimiter:
    """At most ``limit`` failures per key in any sliding ``window`` of seconds.

    Keys are whatever the caller throttles on: ``("ip", "10.0.0.1")`` or
    ``("key", key_id, ip)``. Failures age out, so a key is never locked for good: once the
    window has passed, the right credentials work again. Memory is bounded by ``max_keys``:
    the oldest keys are forgotten first.
    """

    def __init__(
        self,
        *,
        limit: int,
        window: float,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be at least 1 and window positive")
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._failures: dict[Hashable, deque[float]] = {}

    def _recent(self, key: Hashable, now: float) -> deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures

    def retry_after(self, key: Hashable) -> int | None:
        """Whole seconds until ``key`` may try again, or None when it may try now."""
        now = self._clock()
        failures = self._recent(key, now)
        if failures is None or len(failures) < self.limit:
            return None
        # The attempt is allowed again once the oldest counted failure leaves the window.
        return max(1, math.ceil(failures[-self.limit] + self.window - now))

    def record_failure(self, key: Hashable) -> None:
        """Count one failure for ``key`` now."""
        now = self._clock()
        failures = self._recent(key, now)
        if failures is None:
            if len(self._failures) >= self.max_keys:
                # dicts keep insertion order: drop the key that started failing first.
                del self._failures[next(iter(self._failures))]
            failures = self._failures[key] = deque(maxlen=self.limit)
        failures.append(now)

    def reset(self, key: Hashable) -> None:
        """Forget ``key``'s failures (after a success)."""
        self._failures.pop(key, None)


class MemoryThrottleStore:
    """A :class:`~wfa_auth.base.ThrottleStore` in this process's memory (one process only).

    Memory is bounded by ``max_buckets``: the buckets used least recently go first.
    """

    def __init__(
        self, *, max_buckets: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_buckets = max_buckets
        self._clock = clock
        self._buckets: dict[str, dict[str, float]] = {}

    def _live(self, bucket: str, now: float) -> dict[str, float]:
        members = self._buckets.pop(bucket, None) or {}
        # Re-inserted last: dicts keep insertion order, so the first bucket is the oldest.
        live = {member: expires for member, expires in members.items() if expires > now}
        self._buckets[bucket] = live
        while len(self._buckets) > self.max_buckets:
            del self._buckets[next(iter(self._buckets))]
        return live

    async def reserve(self, bucket: str, member: str, *, limit: int, window: float) -> float | None:
        """Add or renew ``member`` unless ``bucket`` is full, else the seconds until one frees."""
        now = self._clock()
        members = self._live(bucket, now)
        if member in members or len(members) < limit:
            members[member] = now + window
            return None
        return max(0.0, min(members.values()) - now)

    async def release(self, bucket: str, member: str) -> None:
        """Remove ``member`` from ``bucket``."""
        members = self._buckets.get(bucket)
        if members is not None:
            members.pop(member, None)

    async def clear(self, bucket: str) -> None:
        """Remove every member of ``bucket``."""
        self._buckets.pop(bucket, None)
