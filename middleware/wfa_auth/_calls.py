"""Call analytics: per key and hour, how many calls ended in each outcome.

Counted in memory on the request path (a dict lookup and an increment) and written to a
:class:`~wfa_auth.base.CallSink` in one batch every ``interval`` seconds and at shutdown.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import anyio

from wfa_auth.base import CallSink

logger = logging.getLogger("wfa_auth")

#: The outcomes counted, in the order of each count list a :class:`CallSink` receives.
CALL_OUTCOMES = (
    "success",
    "rate_limited",
    "quota_exceeded",
    "insufficient_scope",
    "ip_not_allowed",
    "disabled",
    "expired",
    "invalid_secret",
)
SUCCESS = 0
INSUFFICIENT_SCOPE = 3
#: The refusals counted for a known key, by error code; other refusals are not counted.
OUTCOME_OF_ERROR = {
    "rate_limited": 1,
    "quota_exceeded": 2,
    "insufficient_scope": INSUFFICIENT_SCOPE,
    "ip_not_allowed": 4,
    "key_disabled": 5,
    "key_expired": 6,
    # Only raised with the key for a wrong secret of a known Key ID.
    "invalid_credentials": 7,
}
#: The scope entry an endpoint sets to the error code it answered (``insufficient_scope``),
#: so that the call is counted under that outcome rather than ``success``.
SCOPE_OUTCOME = "wfa_auth.outcome"
_MAX_PENDING = 200_000
_NONE = (0,) * len(CALL_OUTCOMES)
#: How long (seconds) a key's count list is kept without calls.
_KEEP_IDLE = 60.0


class CallRecorder:
    """Counts calls per (Key ID, organization ID, hour) and outcome; flushes in batches.

    :meth:`count` is on the path of every call: it compares the clock with the end of the
    current hour (the hour itself is worked out only when the clock leaves it) and adds one
    to the key's counts of that hour, kept under the Key ID alone (a Key ID names one key,
    of one organization).
    """

    def __init__(
        self,
        sink: CallSink,
        *,
        interval: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sink = sink
        self.interval = interval
        self._clock = clock
        #: Counts of earlier hours not written yet (an hour left, or a failed write), by
        #: (Key ID, organization ID, start of the hour): as :meth:`CallSink.record_calls`
        #: takes them.
        self._counts: dict[tuple[str, str, datetime], tuple[int, ...]] = {}
        #: The current hour's counts by Key ID since the last flush, and each key's
        #: organization ID. A key's list stays from one flush to the next, and a minute
        #: after its last call.
        self._current: dict[str, list[int]] = {}
        self._organizations: dict[str, str] = {}
        #: How many flushes in a row found no calls of a key (keys with none only).
        self._quiet: dict[str, int] = {}
        #: The current hour, and the wall times it spans.
        self._hour = datetime.fromtimestamp(0, UTC)
        self._hour_starts = self._hour_ends = -math.inf
        self.next_flush = clock() + interval
        self._lock = anyio.Lock()
        self.running = False

    def count(self, key_id: str, organization_id: str, outcome: int) -> None:
        """Count one call of the key with ``outcome`` (an index into CALL_OUTCOMES)."""
        now = self._clock()
        if now >= self._hour_ends or now < self._hour_starts:
            self._enter_hour(now)
        counts = self._current.get(key_id)
        if counts is None:
            if len(self._current) + len(self._counts) >= _MAX_PENDING:
                return  # the sink is down for long: keep memory bounded
            counts = self._current[key_id] = [0] * len(CALL_OUTCOMES)
            self._organizations[key_id] = organization_id
        counts[outcome] += 1

    def _enter_hour(self, now: float) -> None:
        """Set the counts of the hour the clock left aside, and start counting ``now``'s."""
        self._set_aside()
        self._hour_starts = now // 3600 * 3600.0
        self._hour_ends = self._hour_starts + 3600.0
        self._hour = datetime.fromtimestamp(self._hour_starts, UTC)

    def _set_aside(self) -> None:
        """Move the current hour's counts to those waiting for the next flush (as tuples).

        A key's list is zeroed and kept for its next calls, and dropped once the key has
        made none for a minute (:data:`_KEEP_IDLE`). Made anew each flush, or after each
        pause in a key's calls, tens of thousands of lists (one a key calling) outlived a
        few young collections each time, and then made the garbage collector's full passes
        over every warm key's objects come about once a flush."""
        hour, organizations, pending = self._hour, self._organizations, self._counts
        current, quiet, idle = self._current, self._quiet, []
        for key_id, counts in current.items():
            if any(counts):
                _add(pending, (key_id, organizations[key_id], hour), counts)
                counts[:] = _NONE
                if key_id in quiet:
                    del quiet[key_id]
            else:
                idle.append(key_id)
        most = max(1, math.ceil(_KEEP_IDLE / self.interval))
        for key_id in idle:
            flushes = quiet[key_id] = quiet.get(key_id, 0) + 1
            if flushes >= most:
                del current[key_id], organizations[key_id], quiet[key_id]

    def flush_is_due(self) -> bool:
        """True when a flush is due and no :meth:`run` task will make it."""
        return not self.running and self.next_flush <= self._clock() and not self._lock.locked()

    async def flush(self) -> None:
        """Write every pending count now, in one call; kept for next time if it fails."""
        async with self._lock:
            self.next_flush = self._clock() + self.interval
            self._set_aside()
            if not self._counts:
                return
            pending, self._counts = self._counts, {}
            try:
                await self.sink.record_calls(pending)
            except Exception as exc:
                logger.warning(
                    "could not record the calls of %d key-hour(s): %s",
                    len(pending),
                    type(exc).__name__,
                )
                for entry, counts in pending.items():
                    _add(self._counts, entry, counts)

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """While entered, flushes every ``interval`` seconds; flushes at exit."""
        async with anyio.create_task_group() as tasks:
            self.running = True
            tasks.start_soon(self._timer)
            try:
                yield
            finally:
                self.running = False
                # A write in progress ends first: cancelled, its transaction would be rolled
                # back, and its counts (no longer pending) lost to the flush below.
                async with self._lock:
                    tasks.cancel_scope.cancel()
        await self.flush()

    async def _timer(self) -> None:
        while True:
            await anyio.sleep(self.interval)
            await self.flush()


def _add(
    pending: dict[tuple[str, str, datetime], tuple[int, ...]],
    entry: tuple[str, str, datetime],
    counts: Sequence[int],
) -> None:
    """Add ``counts`` to those of ``entry`` in ``pending``."""
    mine = pending.get(entry)
    if mine is not None:
        counts = [a + b for a, b in zip(mine, counts, strict=True)]
    pending[entry] = tuple(counts)
