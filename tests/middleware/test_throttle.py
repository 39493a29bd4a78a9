"""The failure limiter: slows guessing down and never locks anybody out for good."""

from __future__ import annotations

import pytest

from wfa_auth import FailureLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_attempts_below_the_limit_are_allowed(clock: FakeClock) -> None:
    limiter = FailureLimiter(limit=3, window=60, clock=clock)
    for _ in range(2):
        limiter.record_failure("k")

    assert limiter.retry_after("k") is None


def test_reaching_the_limit_blocks_until_the_oldest_failure_leaves_the_window(
    clock: FakeClock,
) -> None:
    limiter = FailureLimiter(limit=3, window=60, clock=clock)
    for _ in range(3):
        limiter.record_failure("k")
        clock.now += 10

    # failures at 1000, 1010, 1020; now 1030: the first leaves the window at 1060.
    assert limiter.retry_after("k") == 30
    clock.now = 1060.5
    assert limiter.retry_after("k") is None


def test_keys_are_counted_separately(clock: FakeClock) -> None:
    limiter = FailureLimiter(limit=1, window=60, clock=clock)
    limiter.record_failure(("key", "wfak_a", "10.0.0.1"))

    assert limiter.retry_after(("key", "wfak_a", "10.0.0.1")) == 60
    assert limiter.retry_after(("key", "wfak_a", "10.0.0.2")) is None


def test_reset_forgets_the_failures(clock: FakeClock) -> None:
    limiter = FailureLimiter(limit=1, window=60, clock=clock)
    limiter.record_failure("k")
    limiter.reset("k")

    assert limiter.retry_after("k") is None


def test_memory_is_bounded_by_forgetting_the_oldest_keys(clock: FakeClock) -> None:
    limiter = FailureLimiter(limit=1, window=60, max_keys=2, clock=clock)
    for key in ("a", "b", "c"):
        limiter.record_failure(key)

    assert limiter.retry_after("a") is None
    assert limiter.retry_after("b") == 60
    assert limiter.retry_after("c") == 60


@pytest.mark.parametrize(("limit", "window"), [(0, 60), (1, 0), (-1, 10)])
def test_nonsense_limits_are_refused(limit: int, window: float) -> None:
    with pytest.raises(ValueError, match="limit must be"):
        FailureLimiter(limit=limit, window=window)
