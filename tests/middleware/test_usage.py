"""UsageRecorder: last-used times written at most once per interval per key, in batches."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime

import pytest

from wfa_auth import MemoryKeyStore
from wfa_auth.usage import UsageRecorder


class RecordingStore(MemoryKeyStore):
    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.writes: list[list[str]] = []
        self.fail = fail

    async def record_usage(self, last_used: Mapping[str, datetime]) -> None:
        self.writes.append(sorted(last_used))
        if self.fail:
            raise ConnectionRefusedError(111, "refused")


async def test_each_key_is_written_once_per_interval() -> None:
    now = [0.0]
    store = RecordingStore()
    usage = UsageRecorder(store, interval=60, clock=lambda: now[0])
    for _ in range(100):
        usage.note("a")
    usage.note("b")
    await usage.flush()
    now[0] = 59.0
    usage.note("a")
    await usage.flush()
    assert sorted(k for w in store.writes for k in w) == ["a", "b"]
    now[0] = 60.0
    usage.note("a")
    await usage.flush()
    assert store.writes[-1] == ["a"]


async def test_uses_noted_during_a_write_are_batched_into_the_next() -> None:
    store = RecordingStore()
    usage = UsageRecorder(store)
    usage.note("a")
    usage.note("b")
    usage.note("c")
    await asyncio.sleep(0)
    await usage.flush()
    assert store.writes == [["a", "b", "c"]]


async def test_a_failed_write_is_logged_without_detail_and_retried_on_next_use(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = RecordingStore(fail=True)
    usage = UsageRecorder(store, interval=60)
    usage.note("a")
    await usage.flush()
    usage.note("a")
    await usage.flush()
    assert store.writes == [["a"], ["a"]]
    assert "ConnectionRefusedError" in caplog.text
    assert "refused" not in caplog.text.replace("ConnectionRefusedError", "")
