"""Counting failures per client so that guessing is slow and nobody is locked out for good."""

from __future__ import annotations

import time
from collections.abc import Callable


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
        # Empty and still full: a limit of 0 (a membership test) frees nothing.
        return max(0.0, min(members.values(), default=now + window) - now)

    async def release(self, bucket: str, member: str) -> None:
        """Remove ``member`` from ``bucket``."""
        members = self._buckets.get(bucket)
        if members is not None:
            members.pop(member, None)

    async def clear(self, bucket: str) -> None:
        """Remove every member of ``bucket``."""
        self._buckets.pop(bucket, None)
