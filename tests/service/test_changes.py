"""The change listener: applies committed changes, and fails safe while its feed is down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from tortoise.context import TortoiseContext
from tortoise.transactions import in_transaction

from support.tcp_proxy import FAULTS, LISTENERS, TcpProxy
from wfa_keys.changes import (
    ChangeListener,
    prune_changes,
    publish_key_change,
    publish_keys_change,
)
from wfa_keys.models import KeyChange


class Target:
    """Records what the listener tells the middleware."""

    def __init__(self) -> None:
        self.changed: list[str] = []
        self.all_changed = 0
        self.ttl: list[float] = []

    async def key_changed(self, key_id: str) -> None:
        self.changed.append(key_id)

    def all_keys_changed(self) -> None:
        self.all_changed += 1

    def set_record_cache_ttl(self, seconds: float) -> None:
        self.ttl.append(seconds)


async def eventually(check: object, what: str) -> None:
    """Wait (50 ms steps, 5 s at most) until ``check()`` is true."""
    for _ in range(100):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"not within 5 s: {what}")


async def failed_change() -> None:
    async with in_transaction():
        await publish_key_change("rolled-back")
        raise RuntimeError("the change fails")


@pytest.fixture
async def target() -> Target:
    return Target()


@pytest.fixture
async def listener(
    db: TortoiseContext, database_url: str, target: Target
) -> AsyncIterator[ChangeListener]:
    change_listener = ChangeListener(target, database_url, healthy_ttl=60, poll_interval=0.05)
    await change_listener.start()
    yield change_listener
    await change_listener.stop()


async def test_committed_changes_reach_the_middleware_and_rolled_back_ones_do_not(
    listener: ChangeListener, target: Target
) -> None:
    await eventually(lambda: listener.healthy, "the feed is up")
    assert target.ttl[-1] == 60
    before = target.all_changed
    with pytest.raises(RuntimeError):
        await failed_change()
    async with in_transaction():
        await publish_key_change("k1")
    async with in_transaction():
        await publish_key_change(None)

    await eventually(lambda: "k1" in target.changed, "k1 applied")
    await eventually(lambda: target.all_changed > before, "every key applied")
    assert "rolled-back" not in target.changed


async def test_changes_made_before_the_start_are_not_replayed(
    db: TortoiseContext, database_url: str, target: Target
) -> None:
    async with in_transaction():
        await publish_key_change("old")
    change_listener = ChangeListener(target, database_url, poll_interval=0.05)
    await change_listener.start()
    try:
        await eventually(lambda: change_listener.healthy, "the feed is up")
    finally:
        await change_listener.stop()
    assert target.changed == []
    # Until the feed was up, records were trusted one second at most.
    assert target.ttl[0] <= 1


async def test_a_lost_feed_shortens_the_ttl_and_the_missed_changes_are_caught_up(
    db: TortoiseContext, database_url: str, target: Target
) -> None:
    if not database_url.startswith("postgres"):
        pytest.skip("the LISTEN connection exists on PostgreSQL only")
    parts = urlsplit(database_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxied = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()
    change_listener = ChangeListener(target, proxied, healthy_ttl=60, max_backoff=0.2)
    await change_listener.start()
    try:
        await eventually(lambda: change_listener.healthy, "the feed is up")
        flushed = target.all_changed
        proxy.go_down()
        await eventually(lambda: not change_listener.healthy, "the loss is noticed")
        assert target.ttl[-1] <= 1
        assert target.all_changed > flushed
        async with in_transaction():
            await publish_key_change("while-down")
        proxy.come_back()
        await eventually(lambda: change_listener.healthy, "the feed is back")
        await eventually(lambda: "while-down" in target.changed, "the missed change")
        assert target.ttl[-1] == 60
    finally:
        await change_listener.stop()
        proxy.close()


async def test_an_event_loop_held_up_by_its_own_work_keeps_the_feed(
    db: TortoiseContext, database_url: str, target: Target
) -> None:
    """A heartbeat's time runs from its sending: while this process's own work holds the
    event loop past the deadline (a CPU-bound stretch, a blocking call), nothing is sent, and
    the beat sent before it was heard back meanwhile, in the socket: the feed is not lost and
    nothing cached is dropped."""
    if not database_url.startswith("postgres"):
        pytest.skip("the LISTEN connection exists on PostgreSQL only")
    change_listener = ChangeListener(
        target, database_url, healthy_ttl=60, heartbeat_interval=0.05, heartbeat_timeout=0.3
    )
    await change_listener.start()
    try:
        await eventually(lambda: change_listener.healthy, "the feed is up")
        flushed = target.all_changed
        for _ in range(3):
            time.sleep(0.6)  # noqa: ASYNC251  # the loop held up, on purpose
            await asyncio.sleep(0.2)
        assert change_listener.healthy
        assert target.all_changed == flushed
        async with in_transaction():
            await publish_key_change("after-the-stall")
        await eventually(lambda: "after-the-stall" in target.changed, "the change applied")
    finally:
        await change_listener.stop()


@pytest.mark.parametrize("fault", FAULTS)
async def test_a_feed_that_stops_answering_is_lost_within_a_second_and_found_again(
    db: TortoiseContext, database_url: str, target: Target, fault: str
) -> None:
    if not database_url.startswith("postgres"):
        pytest.skip("the LISTEN connection exists on PostgreSQL only")
    parts = urlsplit(database_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxied = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()
    change_listener = ChangeListener(target, proxied, healthy_ttl=60, max_backoff=0.2)
    await change_listener.start()
    try:
        await eventually(lambda: change_listener.healthy, "the feed is up")
        flushed = target.all_changed
        # The link goes silent (or is reset): nothing is closed cleanly, nothing is raised.
        proxy.fault(fault, only=LISTENERS)
        lost_at = time.monotonic()
        await eventually(lambda: not change_listener.healthy, "the loss is noticed")
        noticed = time.monotonic() - lost_at

        async with in_transaction():
            await publish_key_change("while-silent")
        proxy.heal()
        await eventually(lambda: change_listener.healthy, "the feed is back")
        await eventually(lambda: "while-silent" in target.changed, "the missed change")
    finally:
        await change_listener.stop()
        proxy.close()
    # Heartbeats every 0.25 s, each heard back within 0.75 s: lost within a second (with
    # room for a loaded machine), everything cached dropped, records trusted 1 s at most.
    assert noticed < 1.5
    assert target.all_changed > flushed
    assert 1 in target.ttl[1:]
    assert target.ttl[-1] == 60


async def test_a_poll_that_hangs_counts_as_a_lost_feed(
    db: TortoiseContext, database_url: str, target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    change_listener = ChangeListener(
        target, "sqlite://unused", poll_interval=0.05, heartbeat_timeout=0.3
    )
    await change_listener.start()
    try:
        await eventually(lambda: change_listener.healthy, "the feed is up")
        hang = asyncio.Event()

        async def stuck(how: str = "catch_up") -> None:
            await hang.wait()

        monkeypatch.setattr(change_listener, "_catch_up", stuck)
        await eventually(lambda: not change_listener.healthy, "the hang is noticed")
        assert target.ttl[-1] <= 1
        monkeypatch.undo()
        await eventually(lambda: change_listener.healthy, "the feed is back")
    finally:
        await change_listener.stop()


async def test_pruning_keeps_recent_rows_and_the_newest(db: TortoiseContext) -> None:
    for key_id in ("a", "b", "c"):
        await KeyChange.create(key_id=key_id)
    await KeyChange.filter(key_id__in=["a", "b", "c"]).update(
        created_at=datetime.now(UTC) - timedelta(days=2)
    )
    await KeyChange.create(key_id="recent")

    assert await prune_changes(timedelta(days=1)) == 3
    left: list[Any] = await KeyChange.all().values_list("key_id", flat=True)
    assert left == ["recent"]
    await KeyChange.filter(key_id="recent").update(created_at=datetime.now(UTC) - timedelta(days=2))
    assert await prune_changes(timedelta(days=1)) == 0  # the newest stays


# -- batches (the inactivity sweep) -------------------------------------------------------


async def test_a_batch_change_drops_each_of_its_keys_and_not_every_key(
    listener: ChangeListener, target: Target
) -> None:
    await eventually(lambda: listener.healthy, "the feed is up")
    before = target.all_changed
    async with in_transaction():
        await publish_keys_change(["b1", "b2", "b3"])

    await eventually(lambda: {"b1", "b2", "b3"} <= set(target.changed), "the batch applied")
    assert target.all_changed == before
    # One row for the batch, read as "every key" by a process that predates batches.
    rows: list[Any] = await KeyChange.all().values_list("key_id", "key_ids")
    assert rows == [(None, ["b1", "b2", "b3"])]


async def test_a_batch_missed_while_the_feed_was_down_is_caught_up(
    db: TortoiseContext, database_url: str, target: Target
) -> None:
    change_listener = ChangeListener(target, database_url, poll_interval=0.05)
    await change_listener.start()
    try:
        await eventually(lambda: change_listener.healthy, "the feed is up")
        async with in_transaction():
            await publish_keys_change(["m1", "m2"])
        # The catch-up path reads the row itself, as after a lost feed.
        change_listener.last_seen -= 1
        await change_listener._catch_up()
        assert {"m1", "m2"} <= set(target.changed)
    finally:
        await change_listener.stop()
