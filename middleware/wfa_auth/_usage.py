"""Keeping ``last_used_at`` and ``last_used_ip`` exact to the minute without a database write
per request."""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import anyio

from wfa_auth._networks import canonical_ip
from wfa_auth.base import KeyStore, Usage

logger = logging.getLogger("wfa_auth")

_MAX_WRITTEN = 100_000
#: Timed writes start at least this share of the interval apart (a second of a minute), and
#: each takes the keys whose interval ends before the next could start. When tens of
#: thousands of keys call, their intervals end all over the minute (each began at the key's
#: own last write) and new keys keep coming: one write a second rather than one transaction
#: after another, a few keys each.
_SPACING = 1 / 60


class UsageRecorder:
    """Writes each key's latest use about once per ``interval`` seconds, in batches.

    The first use of a key is written at once; uses inside the interval that follows are
    deferred, never dropped: the latest is written when the key's interval ends, so the
    stored time is never more than ``interval`` behind the real last use, and the address
    written with it is the one of that use. Timed writes are a sixtieth of ``interval``
    apart at least (a second of a minute), each with the keys whose interval ends before
    the next: a key is written at most once per 59/60 of ``interval``, a first use within
    a second when another write was just made, and many keys at a write a second.

    :meth:`run` is the timer task that does so; without it, due writes happen in
    :meth:`write_due`, which the middleware calls after a response. :meth:`flush` writes
    everything pending (at shutdown).

    Times are kept as ``clock`` (monotonic) readings, which cost less than a datetime on the
    hot path, and turned into ``now()``-based datetimes when written.
    """

    def __init__(
        self,
        store: KeyStore,
        *,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.store = store
        self.interval = interval
        self._clock = clock
        self._now = now
        self._sleep = sleep
        #: Key ID -> clock reading and client address of its latest use not yet written.
        self._pending: dict[str, tuple[float, str | None]] = {}
        #: Key ID -> clock reading of its last write (when the write started).
        self._written: dict[str, float] = {}
        #: (due, Key ID), earliest first; an entry whose key is no longer pending is skipped.
        self._queue: list[tuple[float, str]] = []
        self.next_due = math.inf
        #: The earliest clock reading of the next timed write.
        self._next_write = -math.inf
        self._lock = anyio.Lock()
        self._wake: anyio.Event | None = None
        self.running = False

    def note(self, key_id: str, now: float, ip: str | None = None) -> None:
        """Count one use of ``key_id`` at clock reading ``now`` from address ``ip`` (cheap: the
        hot path)."""
        pending = self._pending
        if key_id in pending:
            pending[key_id] = (now, ip)
            return
        pending[key_id] = (now, ip)
        last = self._written.get(key_id)
        due = now if last is None else max(now, last + self.interval)
        heapq.heappush(self._queue, (due, key_id))
        if due < self.next_due:
            self.next_due = due
            if self._wake is not None:
                self._wake.set()

    def write_is_due(self) -> bool:
        """True when a write is due and no :meth:`run` task will make it (no lock taken)."""
        return not self.running and self._write_at() <= self._clock() and not self._lock.locked()

    def _write_at(self) -> float:
        """The clock reading from which the next timed write is due: the earliest key's,
        not before the spacing after the last write."""
        return max(self.next_due, self._next_write)

    async def write_due(self) -> None:
        """Write the keys whose interval has ended, with those whose interval ends before
        the next write may start, in one ``record_usage`` call; nothing if none has ended or
        the last write started less than a sixtieth of the interval ago."""
        async with self._lock:
            now = self._clock()
            if self._write_at() <= now:
                self._next_write = now + self.interval * _SPACING
                await self._write(self._next_write)

    async def flush(self) -> None:
        """Write every pending use now, whatever its interval (waits for a running write)."""
        async with self._lock:
            await self._write(math.inf)

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """While entered, a task writes each key when its interval ends; flushes at exit."""
        async with anyio.create_task_group() as tasks:
            self.running = True
            tasks.start_soon(self._timer)
            try:
                yield
            finally:
                self.running = False
                # A write in progress ends first: cancelled, its transaction would be rolled
                # back, and its keys (no longer pending) lost to the flush below.
                async with self._lock:
                    tasks.cancel_scope.cancel()
        await self.flush()

    async def _timer(self) -> None:
        while True:
            self._wake = anyio.Event()
            delay = self._write_at() - self._clock()
            if delay > 0:
                # Whichever comes first: the earliest due time, or an earlier one being noted.
                async with anyio.create_task_group() as waits:

                    async def wait(awaitable: Awaitable[None]) -> None:
                        await awaitable
                        waits.cancel_scope.cancel()

                    waits.start_soon(wait, self._wake.wait())
                    if delay != math.inf:
                        waits.start_soon(wait, self._sleep(delay))
                continue
            await self.write_due()

    async def _write(self, until: float) -> None:
        now = self._clock()
        queue, pending = self._queue, self._pending
        uses: dict[str, tuple[float, str | None]] = {}
        while queue and queue[0][0] <= until:
            _, key_id = heapq.heappop(queue)
            used = pending.pop(key_id, None)
            if used is not None:
                uses[key_id] = used
                self._written[key_id] = now
        self.next_due = queue[0][0] if queue else math.inf
        if len(self._written) > _MAX_WRITTEN:
            # Keys not written for an interval need no memory: their next use is written at once.
            self._written = {k: t for k, t in self._written.items() if t > now - self.interval}
        if not uses:
            return
        batch = _Uses(uses, self._now(), now)
        try:
            await self.store.record_usage(batch)
        except Exception as exc:
            # Losing a last-used time is harmless; the class name is enough to diagnose.
            logger.warning(
                "could not record the last use of %d key(s): %s", len(batch), type(exc).__name__
            )
            # Kept, and tried again when the interval ends (not on every use: the store is down).
            for key_id, used in uses.items():
                if key_id not in pending:
                    pending[key_id] = used
                    heapq.heappush(queue, (now + self.interval, key_id))
            self.next_due = queue[0][0]


class _Uses(Mapping[str, Usage]):
    """The uses of a write, as :meth:`~wfa_auth.base.KeyStore.record_usage` reads them: each
    key's :class:`~wfa_auth.base.Usage` made when it is read, and gone once the store has
    read it. Made all at once, a write's (tens of thousands at scale) lived as long as the
    store's write and joined the garbage collector's oldest generation, whose full
    collections over every warm key's objects then came more often."""

    __slots__ = ("_now", "_uses", "_wall")

    def __init__(
        self, uses: dict[str, tuple[float, str | None]], wall: datetime, now: float
    ) -> None:
        #: Key ID -> clock reading and address of its use; ``wall`` is the time at ``now``.
        self._uses, self._wall, self._now = uses, wall, now

    def __getitem__(self, key_id: str) -> Usage:
        used, ip = self._uses[key_id]
        # Canonical here, once per write rather than on every request.
        return Usage(at=self._wall - timedelta(seconds=self._now - used), ip=canonical_ip(ip))

    def __iter__(self) -> Iterator[str]:
        return iter(self._uses)

    def __len__(self) -> int:
        return len(self._uses)
