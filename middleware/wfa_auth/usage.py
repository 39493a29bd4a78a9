"""Keeping ``last_used_at`` current to the minute without a database write per request."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from wfa_auth.base import KeyStore

logger = logging.getLogger("wfa_auth")


class UsageRecorder:
    """Notes each use of a key and writes at most one ``record_usage`` per key and ``interval``.

    Uses noted while a write is running are batched into the next write. :meth:`flush` writes
    what is pending; the middleware calls it when the server shuts down.
    """

    def __init__(
        self,
        store: KeyStore,
        *,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.interval = interval
        self._clock = clock
        self._now = now
        self._noted: dict[str, float] = {}
        self._pending: dict[str, datetime] = {}
        self._task: asyncio.Task[None] | None = None

    def note(self, key_id: str, now: float | None = None) -> None:
        """Count one use of ``key_id`` now; starts a background write when one is due."""
        if now is None:
            now = self._clock()
        last = self._noted.get(key_id)
        if last is not None and now - last < self.interval:
            return
        self._noted[key_id] = now
        self._pending[key_id] = self._now()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._write_pending())

    async def flush(self) -> None:
        """Wait for the running write, then write whatever is still pending."""
        if self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        await self._write_pending()

    async def _write_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            try:
                await self.store.record_usage(batch)
            except Exception as exc:
                # Losing a last-used time is harmless; the class name is enough to diagnose.
                logger.warning(
                    "could not record the last use of %d key(s): %s", len(batch), type(exc).__name__
                )
                # Let the next use retry instead of waiting out the interval.
                for key_id in batch:
                    self._noted.pop(key_id, None)
                return
