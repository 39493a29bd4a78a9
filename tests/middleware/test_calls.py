"""Call analytics in memory: counts per key, hour and outcome, written in batches."""

from __future__ import annotations

import gc
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import anyio
import pytest

from support.clock import MonotonicClock
from wfa_auth import CALL_OUTCOMES
from wfa_auth._calls import CallRecorder

#: 2026-03-14 12:00 UTC, in POSIX seconds.
NOON = datetime(2026, 3, 14, 12, tzinfo=UTC).timestamp()
SUCCESS, RATE_LIMITED = CALL_OUTCOMES.index("success"), CALL_OUTCOMES.index("rate_limited")

Batch = Mapping[tuple[str, str, datetime], Sequence[int]]


class Sink:
    """A call sink that keeps every batch, or fails while ``failing``."""

    def __init__(self) -> None:
        self.batches: list[dict[tuple[str, str, datetime], list[int]]] = []
        self.failing = False

    async def record_calls(self, counts: Batch) -> None:
        if self.failing:
            raise ConnectionRefusedError("down")
        self.batches.append({entry: list(values) for entry, values in counts.items()})


def hour(h: int) -> datetime:
    return datetime(2026, 3, 14, h, tzinfo=UTC)


def outcomes(**counts: int) -> list[int]:
    return [counts.get(name, 0) for name in CALL_OUTCOMES]


async def test_calls_are_counted_in_the_hour_they_were_made_in() -> None:
    sink, clock = Sink(), MonotonicClock(NOON + 3599.5)
    recorder = CallRecorder(sink, clock=clock)
    recorder.count("wfak_a", "org-1", SUCCESS)
    clock.advance(0.5)  # 13:00:00 exactly: the next hour
    recorder.count("wfak_a", "org-1", SUCCESS)
    recorder.count("wfak_a", "org-1", RATE_LIMITED)
    recorder.count("wfak_b", "org-2", SUCCESS)
    await recorder.flush()
    assert sink.batches == [
        {
            ("wfak_a", "org-1", hour(12)): outcomes(success=1),
            ("wfak_a", "org-1", hour(13)): outcomes(success=1, rate_limited=1),
            ("wfak_b", "org-2", hour(13)): outcomes(success=1),
        }
    ]


async def test_a_clock_set_back_counts_in_the_earlier_hour_again() -> None:
    sink, clock = Sink(), MonotonicClock(NOON + 3600)
    recorder = CallRecorder(sink, clock=clock)
    recorder.count("wfak_a", "org-1", SUCCESS)
    clock.advance(-1)  # 12:59:59
    recorder.count("wfak_a", "org-1", SUCCESS)
    recorder.count("wfak_a", "org-1", SUCCESS)
    await recorder.flush()
    assert sink.batches == [
        {
            ("wfak_a", "org-1", hour(12)): outcomes(success=2),
            ("wfak_a", "org-1", hour(13)): outcomes(success=1),
        }
    ]


async def test_counts_of_a_failed_write_are_added_to_those_of_the_next() -> None:
    sink, clock = Sink(), MonotonicClock(NOON)
    recorder = CallRecorder(sink, clock=clock)
    recorder.count("wfak_a", "org-1", SUCCESS)
    sink.failing = True
    await recorder.flush()
    sink.failing = False
    recorder.count("wfak_a", "org-1", SUCCESS)
    recorder.count("wfak_a", "org-1", RATE_LIMITED)
    await recorder.flush()
    await recorder.flush()  # nothing left: nothing written
    assert sink.batches == [{("wfak_a", "org-1", hour(12)): outcomes(success=2, rate_limited=1)}]


async def test_a_write_takes_what_was_counted_and_the_next_calls_start_from_zero() -> None:
    sink, clock = Sink(), MonotonicClock(NOON)
    recorder = CallRecorder(sink, clock=clock)
    recorder.count("wfak_a", "org-1", SUCCESS)
    await recorder.flush()
    recorder.count("wfak_a", "org-1", SUCCESS)
    await recorder.flush()
    entry = ("wfak_a", "org-1", hour(12))
    assert sink.batches == [{entry: outcomes(success=1)}, {entry: outcomes(success=1)}]


async def test_a_key_that_keeps_calling_is_counted_without_making_objects() -> None:
    """Its counts are kept from one write to the next, so no new object outlives the young
    collections and joins the full ones (a list a key a write, at scale)."""
    sink, clock = Sink(), MonotonicClock(NOON)
    recorder = CallRecorder(sink, clock=clock)
    keys = [f"wfak_{n}" for n in range(1000)]
    for key_id in keys:
        recorder.count(key_id, "org-1", SUCCESS)
    for _ in range(3):  # and after a pause of 30 s
        await recorder.flush()
    gc.disable()  # so that the count of objects made is not reset by a collection
    try:
        made = gc.get_count()[0]
        for key_id in keys:
            recorder.count(key_id, "org-1", SUCCESS)
        made = gc.get_count()[0] - made
    finally:
        gc.enable()
    assert made < 10  # none a key (one a key when each write made them anew); the loop's own
    await recorder.flush()
    assert sink.batches[1:] == [
        {(key_id, "org-1", hour(12)): outcomes(success=1) for key_id in keys}
    ]


async def test_a_key_without_calls_for_a_minute_is_forgotten() -> None:
    sink, clock = Sink(), MonotonicClock(NOON)
    recorder = CallRecorder(sink, clock=clock)  # a flush every 10 s
    recorder.count("wfak_a", "org-1", SUCCESS)
    recorder.count("wfak_b", "org-1", SUCCESS)
    await recorder.flush()
    for _ in range(5):  # 50 s without wfak_a's calls: its list is kept
        recorder.count("wfak_b", "org-1", RATE_LIMITED)
        await recorder.flush()
    assert sorted(recorder._current) == ["wfak_a", "wfak_b"]
    await recorder.flush()  # a minute without calls: forgotten (wfak_b called 10 s ago)
    assert list(recorder._current) == ["wfak_b"]
    recorder.count("wfak_a", "org-1", SUCCESS)
    await recorder.flush()
    assert sink.batches[1:] == [
        *[{("wfak_b", "org-1", hour(12)): outcomes(rate_limited=1)}] * 5,
        {("wfak_a", "org-1", hour(12)): outcomes(success=1)},
    ]


async def test_while_the_sink_is_down_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("wfa_auth._calls._MAX_PENDING", 3)
    sink, clock = Sink(), MonotonicClock(NOON)
    recorder = CallRecorder(sink, clock=clock)
    recorder.count("wfak_a", "org-1", SUCCESS)
    recorder.count("wfak_b", "org-1", SUCCESS)
    clock.advance(3600)
    recorder.count("wfak_a", "org-1", SUCCESS)  # a third key-hour: still kept
    recorder.count("wfak_c", "org-1", SUCCESS)  # a fourth: dropped
    recorder.count("wfak_a", "org-1", SUCCESS)  # a key-hour already counted: added
    await recorder.flush()
    assert sink.batches == [
        {
            ("wfak_a", "org-1", hour(12)): outcomes(success=1),
            ("wfak_b", "org-1", hour(12)): outcomes(success=1),
            ("wfak_a", "org-1", hour(13)): outcomes(success=2),
        }
    ]


async def test_leaving_run_lets_a_write_in_progress_end() -> None:
    # At shutdown the timer task was cancelled mid-write: its transaction rolled back, and
    # the counts it had taken were written by nobody.
    started, answer = anyio.Event(), anyio.Event()

    class SlowSink(Sink):
        async def record_calls(self, counts: Batch) -> None:
            started.set()
            await answer.wait()
            await super().record_calls(counts)

    async def answer_later() -> None:
        await anyio.wait_all_tasks_blocked()
        answer.set()

    sink = SlowSink()
    recorder = CallRecorder(sink, interval=0.01, clock=MonotonicClock(NOON))
    async with anyio.create_task_group() as tasks, recorder.run():
        recorder.count("wfak_a", "org-1", SUCCESS)
        await started.wait()  # the timer's write is waiting for the sink
        tasks.start_soon(answer_later)
    assert sink.batches == [{("wfak_a", "org-1", hour(12)): outcomes(success=1)}]
