"""UsageRecorder: each key's latest use written about once per interval, never dropped."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel
import pytest

from support.clock import MonotonicClock
from support.collector import young_survivors
from wfa_auth import MemoryKeyStore, Usage
from wfa_auth._usage import UsageRecorder

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class RecordingStore(MemoryKeyStore):
    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        #: The times of each write; ``addresses`` the addresses written with them.
        self.writes: list[dict[str, datetime]] = []
        self.addresses: list[dict[str, str | None]] = []
        self.fail = fail
        self.gate: anyio.Event | None = None
        #: The writes that returned (not cancelled, not failed).
        self.completed: list[dict[str, datetime]] = []

    async def record_usage(self, last_used: Mapping[str, Usage]) -> None:
        written = {key_id: usage.at for key_id, usage in last_used.items()}
        self.writes.append(written)
        self.addresses.append({key_id: usage.ip for key_id, usage in last_used.items()})
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionRefusedError(111, "refused")
        self.completed.append(written)


def at(seconds: float) -> datetime:
    """The wall time of monotonic reading ``seconds`` (the two clocks move together)."""
    return EPOCH + timedelta(seconds=seconds)


@pytest.fixture
def clock() -> MonotonicClock:
    return MonotonicClock(start=0.0)


def recorder(store: MemoryKeyStore, clock: MonotonicClock, **options: object) -> UsageRecorder:
    return UsageRecorder(
        store,
        interval=60,
        clock=clock,
        now=lambda: at(clock.now),
        **options,  # type: ignore[arg-type]
    )


async def test_the_first_use_of_a_key_is_written_at_once(clock: MonotonicClock) -> None:
    store = RecordingStore()
    usage = recorder(store, clock)
    clock.now = 5.0
    usage.note("a", clock())
    assert usage.write_is_due()
    await usage.write_due()
    assert store.writes == [{"a": at(5)}]


async def test_uses_inside_the_window_are_deferred_not_dropped(clock: MonotonicClock) -> None:
    store = RecordingStore()
    usage = recorder(store, clock)
    usage.note("a", clock())
    await usage.write_due()
    for second in (10.0, 30.0, 45.5):
        clock.now = second
        usage.note("a", clock())
        await usage.write_due()
    clock.now = 59.9
    await usage.write_due()
    assert store.writes == [{"a": at(0)}]
    clock.now = 60.0
    assert usage.write_is_due()
    await usage.write_due()
    # The latest use, exact, written when the key's minute ended.
    assert store.writes == [{"a": at(0)}, {"a": at(45.5)}]
    clock.now = 200.0
    await usage.write_due()
    assert len(store.writes) == 2  # nothing more was used


async def test_pending_uses_are_written_at_shutdown(clock: MonotonicClock) -> None:
    store = RecordingStore()
    usage = recorder(store, clock)
    usage.note("a", clock())
    usage.note("b", clock())
    await usage.write_due()
    clock.now = 11.0
    usage.note("a", clock())
    await usage.flush()
    assert store.writes == [{"a": at(0), "b": at(0)}, {"a": at(11)}]


async def test_keys_due_together_are_written_in_one_batch(clock: MonotonicClock) -> None:
    store = RecordingStore()
    usage = recorder(store, clock)
    for key_id in ("a", "b", "c"):
        usage.note(key_id, clock())
    await usage.write_due()
    assert store.writes == [{"a": at(0), "b": at(0), "c": at(0)}]


async def test_keys_whose_intervals_end_within_a_second_are_written_in_one_batch(
    clock: MonotonicClock,
) -> None:
    # 50,000 keys used all the time have intervals ending all over the minute: written key
    # by key as each ended, the writes (a transaction each) ran back to back.
    store = RecordingStore()
    usage = recorder(store, clock)
    for second, key_id in ((0.0, "a"), (1.0, "b"), (2.5, "c")):
        clock.now = second
        usage.note(key_id, clock())
        await usage.write_due()  # each key's first use, at once
    clock.now = 10.0
    for key_id in ("a", "b", "c"):
        usage.note(key_id, clock())
    clock.now = 60.0
    await usage.write_due()
    # a's interval ended, b's ends within a second (a sixtieth of the interval): one write.
    assert store.writes[3:] == [{"a": at(10), "b": at(10)}]
    clock.now = 61.5
    await usage.write_due()
    assert len(store.writes) == 4  # c's ends at 62.5
    clock.now = 62.5
    await usage.write_due()
    assert store.writes[4:] == [{"c": at(10)}]


async def test_first_uses_within_a_second_of_a_write_wait_for_the_next_a_second_later(
    clock: MonotonicClock,
) -> None:
    # New keys coming one after another are written a second at a time, not each at once.
    store = RecordingStore()
    usage = recorder(store, clock)
    usage.note("a", clock())
    await usage.write_due()
    for second, key_id in ((0.25, "b"), (0.5, "c")):
        clock.now = second
        usage.note(key_id, clock())
        assert not usage.write_is_due()
        await usage.write_due()
    assert store.writes == [{"a": at(0)}]
    clock.now = 1.0
    assert usage.write_is_due()
    await usage.write_due()
    assert store.writes == [{"a": at(0)}, {"b": at(0.25), "c": at(0.5)}]
    clock.now = 5.0
    usage.note("d", clock())
    assert usage.write_is_due()  # no write in the last second: at once


async def test_uses_noted_during_a_write_wait_for_the_next_and_flush_waits_for_the_write(
    clock: MonotonicClock,
) -> None:
    store = RecordingStore()
    store.gate = anyio.Event()
    usage = recorder(store, clock)
    usage.note("a", clock())
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(usage.write_due)
        await anyio.wait_all_tasks_blocked()
        clock.now = 1.0
        usage.note("a", clock())
        usage.note("b", clock())
        assert not usage.write_is_due()  # a write is running
        tasks.start_soon(usage.flush)
        await anyio.wait_all_tasks_blocked()
        store.gate.set()
    assert store.writes == [{"a": at(0)}, {"a": at(1), "b": at(1)}]


async def test_a_failed_write_is_logged_without_detail_and_retried_when_the_interval_ends(
    clock: MonotonicClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = RecordingStore(fail=True)
    usage = recorder(store, clock)
    usage.note("a", clock())
    await usage.write_due()
    clock.now = 30.0
    await usage.write_due()  # not on every chance: the store is down
    assert len(store.writes) == 1
    store.fail = False
    clock.now = 60.0
    await usage.write_due()
    assert store.writes == [{"a": at(0)}, {"a": at(0)}]
    assert "ConnectionRefusedError" in caplog.text
    assert "refused" not in caplog.text.replace("ConnectionRefusedError", "")


async def test_the_timer_task_writes_each_key_when_its_window_ends(clock: MonotonicClock) -> None:
    store = RecordingStore()
    sleeping: list[float] = []
    wake = anyio.Event()

    async def sleep(seconds: float) -> None:
        sleeping.append(seconds)
        await wake.wait()

    usage = recorder(store, clock, sleep=sleep)
    async with usage.run():
        usage.note("a", clock())
        await anyio.wait_all_tasks_blocked()
        assert store.writes == [{"a": at(0)}]
        clock.now = 20.0
        usage.note("a", clock())
        await anyio.wait_all_tasks_blocked()
        assert sleeping == [40.0]  # until the end of the key's window, not a poll
        assert not usage.write_is_due()  # the task makes the writes, not the requests
        clock.now = 60.0
        wake.set()
        await anyio.wait_all_tasks_blocked()
        assert store.writes == [{"a": at(0)}, {"a": at(20)}]
        clock.now = 70.0
        usage.note("a", clock())
    # Leaving the context writes what is pending.
    assert store.writes == [{"a": at(0)}, {"a": at(20)}, {"a": at(70)}]


async def test_leaving_the_timer_task_lets_a_write_in_progress_end_and_loses_no_use(
    clock: MonotonicClock,
) -> None:
    # At shutdown the timer task was cancelled mid-write: its transaction rolled back, and
    # the keys it had taken off the pending ones were written by nobody.
    store = RecordingStore()
    store.gate = anyio.Event()
    usage = recorder(store, clock)

    async def answer_later() -> None:
        await anyio.wait_all_tasks_blocked()
        assert store.gate is not None
        store.gate.set()

    async with anyio.create_task_group() as tasks, usage.run():
        usage.note("a", clock())
        await anyio.wait_all_tasks_blocked()
        assert store.writes == [{"a": at(0)}]  # the store has not answered yet
        tasks.start_soon(answer_later)
    assert store.completed == [{"a": at(0)}]


async def test_the_address_written_is_the_one_of_the_latest_use(clock: MonotonicClock) -> None:
    store = RecordingStore()
    usage = recorder(store, clock)
    usage.note("a", clock(), "10.0.0.1")
    usage.note("b", clock())  # a client the server knew no address of
    await usage.write_due()
    clock.now = 10.0
    usage.note("a", clock(), "10.0.0.2")
    clock.now = 20.0
    usage.note("a", clock(), "2001:db8::1")
    await usage.flush()
    assert store.writes == [{"a": at(0), "b": at(0)}, {"a": at(20)}]
    assert store.addresses == [{"a": "10.0.0.1", "b": None}, {"a": "2001:db8::1"}]


@pytest.mark.parametrize(
    ("host", "written"),
    [
        ("::1%<svg onload=alert(1)>", "::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("2001:DB8::0001", "2001:db8::1"),
        ("<img src=x onerror=alert(1)>", None),
    ],
)
async def test_only_a_canonical_ip_is_written_as_the_last_used_address(
    clock: MonotonicClock, host: str, written: str | None
) -> None:
    store = RecordingStore()
    usage = recorder(store, clock)
    usage.note("a", clock(), host)
    await usage.write_due()
    assert store.addresses == [{"a": written}]


class DriverLikeStore(MemoryKeyStore):
    """Reads each use into a row, as a database store does, then writes them across a few
    awaits, making objects meanwhile, as a database driver does."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, tuple[datetime, str | None]] = {}

    async def record_usage(self, last_used: Mapping[str, Usage]) -> None:
        rows = {key_id: (usage.at, usage.ip) for key_id, usage in last_used.items()}
        held: list[list[list[object]]] = []
        for _ in range(3):
            held.append([[] for _ in range(300)])  # alive across the awaits, as a driver's
            await anyio.lowlevel.checkpoint()
        self.rows |= rows


async def test_a_write_makes_no_object_a_key_that_lives_as_long_as_the_store_takes(
    clock: MonotonicClock,
) -> None:
    """A write at scale carries tens of thousands of keys: an object made for each before
    the store is called lives across the store's awaits, and joins the garbage collector's
    oldest generation, whose full collections over every warm key's objects then come
    more often. The store reads each key's use as it goes instead."""

    async def survivors(keys: int) -> int:
        store = DriverLikeStore()
        usage = recorder(store, clock)
        for n in range(keys):
            usage.note(f"wfak_{n}", clock(), "10.0.0.1")
        found = await young_survivors(usage.flush())
        assert store.rows == {f"wfak_{n}": (at(clock.now), "10.0.0.1") for n in range(keys)}
        return found

    few, many = await survivors(10), await survivors(2010)
    assert many - few < 200  # 2,000 (a Usage a key) before
