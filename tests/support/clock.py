"""Clocks that move only when a test says so: no sleeps in the suite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """A wall clock (timezone-aware UTC) the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += timedelta(seconds=seconds)


class MonotonicClock:
    """A monotonic clock (seconds) the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds
