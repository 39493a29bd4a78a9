"""Announcing committed changes that affect authentication to every server process.

Call :func:`publish_key_change` inside the transaction of the change: the announcement then
exists if and only if the change is committed. Every process's listener (see
:mod:`wfa_keys.changes` ``ChangeListener``) drops what it cached for that key.

On PostgreSQL the announcement is a ``NOTIFY`` on :data:`CHANNEL` (delivered at commit); on
every database it is also a row of ``key_change``, which SQLite processes poll and which lets
a PostgreSQL listener that lost its connection catch up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from tortoise.connection import get_connection

from wfa_keys.db import is_postgres_url, listener_connect_args
from wfa_keys.models import KeyChange

__all__ = [
    "ALL_KEYS",
    "CHANNEL",
    "ChangeListener",
    "ChangeTarget",
    "FeedLost",
    "prune_changes",
    "publish_key_change",
    "publish_keys_change",
]

logger = logging.getLogger("wfa_keys.changes")

#: The PostgreSQL notification channel.
CHANNEL = "wfa_keys_key_changes"
#: The payload that means "every key" (a user, role or subscription change).
ALL_KEYS = "*"
#: The payload that means "the keys the change row lists" (:func:`publish_keys_change`).
BATCH = "@"
#: Change rows are kept this long: enough for any listener to catch up after an outage.
PRUNE_AFTER = timedelta(days=1)
#: Rows applied one by one when catching up; beyond this every key is dropped instead.
CATCH_UP_BATCH = 1000


def _is_postgres() -> bool:
    return get_connection("default").capabilities.dialect == "postgres"


async def publish_key_change(
    key_id: str | None, *, organization_id: object | None = None, kind: str | None = None
) -> None:
    """Announce, in the caller's transaction, that ``key_id`` changed (None: every key).

    ``organization_id`` (the key's, or the one whose keys all changed) and ``kind`` (what
    happened: ``disabled``, ``regenerated``, ...) are for the change stream of
    ``GET /api/v1/keys/changes``; a change without an organization reaches every
    organization's stream as "every key changed".
    """
    change = await KeyChange.create(
        key_id=key_id,
        organization_id=None if organization_id is None else str(organization_id),
        kind=kind,
    )
    if _is_postgres():
        payload = f"{change.id}:{key_id or ALL_KEYS}"
        await get_connection("default").execute_query(
            "SELECT pg_notify($1, $2)", [CHANNEL, payload]
        )


async def publish_keys_change(
    key_ids: list[str], *, organization_id: object | None = None, kind: str | None = None
) -> None:
    """Announce, in the caller's transaction, that every key of ``key_ids`` changed: one
    change row listing them and one notification, whatever their number.

    The row's ``key_id`` is null, so that whatever reads only that column (a process
    predating batches, the change stream) takes it as "every key" of ``organization_id``:
    the safe reading. ``ChangeListener`` reads ``key_ids`` and drops those keys only.
    """
    change = await KeyChange.create(
        key_id=None,
        key_ids=key_ids,
        organization_id=None if organization_id is None else str(organization_id),
        kind=kind,
    )
    if _is_postgres():
        await get_connection("default").execute_query(
            "SELECT pg_notify($1, $2)", [CHANNEL, f"{change.id}:{BATCH}"]
        )


class ChangeTarget(Protocol):
    """What the listener keeps fresh: :class:`wfa_auth.ApiKeyAuthMiddleware` has these."""

    async def key_changed(self, key_id: str) -> None:
        """Forget what is cached for ``key_id``."""
        ...

    def all_keys_changed(self) -> None:
        """Forget what is cached for every key."""
        ...

    def set_record_cache_ttl(self, seconds: float) -> None:
        """Trust records read from now on for ``seconds``."""
        ...


#: Told of each change the listener applies: how it came (notify, poll, catch_up).
ChangeObserver = Callable[[str], None]


class FeedLost(Exception):
    """The change feed's connection stopped proving that it is alive."""


#: Put in the notification queue for a heartbeat heard back, and for a connection lost.
_BEAT, _LOST = object(), object()


class _Unheard:
    """When the oldest heartbeat not heard back yet was sent (the event loop's time), or
    None when every one sent was heard."""

    __slots__ = ("since",)

    def __init__(self) -> None:
        self.since: float | None = None


class ChangeListener:
    """Applies every committed key change, from any process, to this process's middleware.

    On PostgreSQL it LISTENs on :data:`CHANNEL` through a connection of its own (a pooled
    Tortoise connection goes back to the pool after each statement, its listeners dropped,
    and pooled connections must hold no session state: :mod:`wfa_keys.pgclient`). On SQLite
    it polls ``key_change`` every ``poll_interval`` seconds.

    A connection that dies silently raises nothing (a half-open link, a blackholed route),
    so the feed proves itself: every ``heartbeat_interval`` seconds the listener sends a
    ``NOTIFY`` on a channel of its own through its connection, and it must hear each one
    back through the same connection. When a heartbeat is not heard back within
    ``heartbeat_timeout`` seconds of its sending (or a poll does not succeed within them on
    SQLite), the feed counts as lost. The time runs from the sending, not from the last
    heartbeat heard: an event loop held up by this process's own work sends nothing
    meanwhile, and its delay is not the feed's. TCP keepalive is on
    as well, so that the kernel also gives up on a dead link.

    It fails safe: while the feed is down (before the first connection, after losing it,
    while the database is unreachable) every cached record is dropped once and records are
    trusted ``degraded_ttl`` seconds only; once the feed is back, the rows missed meanwhile
    are applied and records are trusted ``healthy_ttl`` seconds again. So a change made on
    another process is applied here within ``heartbeat_timeout + degraded_ttl`` seconds
    whatever happens to the feed's connection.
    """

    def __init__(
        self,
        target: ChangeTarget,
        database_url: str,
        *,
        healthy_ttl: float = 60.0,
        degraded_ttl: float = 1.0,
        poll_interval: float = 0.25,
        heartbeat_interval: float = 0.25,
        heartbeat_timeout: float = 0.75,
        connect_timeout: float = 3.0,
        max_backoff: float = 2.0,
        observer: ChangeObserver | None = None,
    ) -> None:
        self.target = target
        self.database_url = database_url
        self.healthy_ttl = healthy_ttl
        self.degraded_ttl = min(degraded_ttl, 1.0)
        self.poll_interval = poll_interval
        self.heartbeat_interval = min(heartbeat_interval, 0.5)
        self.heartbeat_timeout = heartbeat_timeout
        self.connect_timeout = connect_timeout
        self.max_backoff = max_backoff
        self.observer = observer
        #: The highest ``key_change.id`` applied so far.
        self.last_seen = 0
        #: True while changes made elsewhere arrive as they are committed.
        self.healthy = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start following changes; records are trusted briefly until the feed is up."""
        self._degrade()
        try:
            async with asyncio.timeout(self.connect_timeout):
                self.last_seen = await _latest_change_id()
        except Exception as exc:  # the loop keeps trying; authentication stays fail-safe
            logger.warning("could not read the change sequence (%s)", type(exc).__name__)
        run = self._listen if is_postgres_url(self.database_url) else self._poll
        self._task = asyncio.create_task(run(), name="wfa-keys change listener")

    async def stop(self) -> None:
        """Stop following changes."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- the two feeds -------------------------------------------------------------------

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            lost: Exception = FeedLost("the connection closed")
            try:
                await self._follow_notifications()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                lost = exc
            if self.healthy:
                backoff = 0.1  # it was up: try again at once, then back off
            self._lost(lost)
            # Jittered, so that the processes of a fleet do not all reconnect at once.
            await asyncio.sleep(backoff * (0.5 + random.random()))  # noqa: S311
            backoff = min(backoff * 2, self.max_backoff)

    async def _follow_notifications(self) -> None:
        """Apply notifications until the dedicated connection is lost or stops answering."""
        import asyncpg  # type: ignore[import-untyped]  # optional, PostgreSQL only

        queue: asyncio.Queue[object] = asyncio.Queue()
        # A channel of this connection's own: other processes never hear its heartbeats.
        beat_channel = f"{CHANNEL}_beat_{secrets.token_hex(8)}"
        async with asyncio.timeout(self.connect_timeout):
            # command_timeout also bounds the cancel request asyncpg sends for a statement
            # stuck on a dead link (it would otherwise wait up to a minute to connect).
            connection = await asyncpg.connect(
                **listener_connect_args(self.database_url), command_timeout=self.connect_timeout
            )
        beats: asyncio.Task[None] | None = None
        try:
            _keep_alive(connection)
            connection.add_termination_listener(lambda _c: queue.put_nowait(_LOST))
            async with asyncio.timeout(self.connect_timeout):
                await connection.add_listener(
                    CHANNEL, lambda _c, _pid, _channel, payload: queue.put_nowait(payload)
                )
                await connection.add_listener(
                    beat_channel, lambda _c, _pid, _channel, _payload: queue.put_nowait(_BEAT)
                )
                # LISTEN is active: whatever is committed from now on is delivered, so the
                # rows committed while the feed was down can be read without a gap.
                await self._catch_up()
            self._restore()
            loop = asyncio.get_running_loop()
            unheard = _Unheard()
            beats = asyncio.create_task(self._beat(connection, beat_channel, unheard))
            while True:
                if queue.empty():
                    sent = unheard.since
                    left = (
                        self.heartbeat_timeout
                        if sent is None
                        else sent + self.heartbeat_timeout - loop.time()
                    )
                    if left <= 0:
                        raise FeedLost("no heartbeat")
                    # asyncio.timeout, not wait_for: on Python 3.11, wait_for loses a
                    # cancellation (stop()) that lands as an item arrives, and the loop runs
                    # on (python/cpython#86296).
                    try:
                        async with asyncio.timeout(left):
                            item = await queue.get()
                    except TimeoutError:
                        continue
                else:
                    # Delivered but not read yet: a busy loop can run a timeout before the
                    # delivery it was waiting for.
                    item = queue.get_nowait()
                if item is _BEAT:
                    unheard.since = None
                elif item is _LOST:
                    return
                else:
                    await self._apply_payload(str(item))
        finally:
            if beats is not None:
                beats.cancel()
            # Never a polite close: on a dead link it would wait for an answer.
            connection.terminate()

    async def _beat(self, connection: Any, channel: str, unheard: _Unheard) -> None:
        """NOTIFY ``channel`` through ``connection`` every ``heartbeat_interval`` seconds,
        noting when the oldest heartbeat not heard back yet was sent."""
        loop = asyncio.get_running_loop()
        while True:
            if unheard.since is None:
                unheard.since = loop.time()
            # Not awaited for an answer beyond the feed's own deadline: a statement stuck on
            # a dead link is what the missing heartbeat reports.
            await connection.execute(f"NOTIFY {channel}", timeout=self.heartbeat_timeout * 4)
            await asyncio.sleep(self.heartbeat_interval)

    async def _poll(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.heartbeat_timeout):
                    await self._catch_up("poll")
                self._restore()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._lost(exc)
            await asyncio.sleep(self.poll_interval)

    async def catch_up(self) -> None:
        """Apply every change committed so far, now (a read that must see all of them)."""
        await self._catch_up()

    # -- applying changes ----------------------------------------------------------------

    async def _catch_up(self, how: str = "catch_up") -> None:
        rows = (
            await KeyChange.filter(id__gt=self.last_seen)
            .order_by("id")
            .limit(CATCH_UP_BATCH)
            .values_list("id", "key_id", "key_ids")
        )
        for change_id, key_id, key_ids in rows:
            if key_ids is not None:
                await self._apply_batch(int(change_id), key_ids, how)
                continue
            await self._apply(int(change_id), key_id, how)
        if len(rows) == CATCH_UP_BATCH:
            # More than a batch missed: dropping everything is cheaper than replaying it.
            self.last_seen = await _latest_change_id()
            self.target.all_keys_changed()

    async def _apply_payload(self, payload: str) -> None:
        change_id, _, key_id = payload.partition(":")
        try:
            number = int(change_id)
        except ValueError:
            logger.warning("ignored a malformed change notification")
            return
        if key_id == BATCH:
            rows = await KeyChange.filter(id=number).values_list("key_ids", flat=True)
            # A row already pruned (a day old) names nothing anymore: every key, to be safe.
            await self._apply_batch(number, rows[0] if rows else None, "notify")
            return
        await self._apply(number, None if key_id == ALL_KEYS else key_id, "notify")

    async def _apply(self, change_id: int, key_id: str | None, how: str) -> None:
        self.last_seen = max(self.last_seen, change_id)
        if key_id is None:
            self.target.all_keys_changed()
        else:
            await self.target.key_changed(key_id)
        if self.observer is not None:
            self.observer(how)

    # -- batches (the inactivity sweep): one row, one notification, many keys ---------------

    async def _apply_batch(self, change_id: int, key_ids: Any, how: str) -> None:
        self.last_seen = max(self.last_seen, change_id)
        if isinstance(key_ids, list):
            for key_id in key_ids:
                await self.target.key_changed(str(key_id))
        else:
            self.target.all_keys_changed()
        if self.observer is not None:
            self.observer(how)

    def _lost(self, exc: BaseException) -> None:
        """The feed is down: say so once (not once per reconnection attempt), then degrade."""
        if self.healthy:
            reason = str(exc) if isinstance(exc, FeedLost) else type(exc).__name__
            logger.warning(
                "the change feed is down (%s): trusting cached records %s s at most",
                reason,
                self.degraded_ttl,
            )
        self._degrade()

    def _degrade(self) -> None:
        if self.healthy or self._task is None:
            # Whatever was cached may have changed unseen: check every key again, and
            # trust what is read now only briefly, until the feed is back.
            self.target.all_keys_changed()
            self.target.set_record_cache_ttl(self.degraded_ttl)
        self.healthy = False

    def _restore(self) -> None:
        if not self.healthy:
            # Records cached while the feed was down may predate a change whose row
            # was numbered before ``last_seen``: check them again too.
            self.target.all_keys_changed()
            self.target.set_record_cache_ttl(self.healthy_ttl)
            self.healthy = True
            logger.info("following key changes")


def _keep_alive(connection: Any) -> None:
    """Turn TCP keepalive on for ``connection``'s socket, so that the kernel gives up on a
    dead link within seconds (asyncpg has no option for it; its transport has the socket)."""
    transport = getattr(connection, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 1), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    with contextlib.suppress(OSError):
        for level, option, value in options:
            sock.setsockopt(level, option, value)


async def _latest_change_id() -> int:
    latest: list[Any] = await KeyChange.all().order_by("-id").limit(1).values_list("id", flat=True)
    return int(latest[0]) if latest else 0


async def prune_changes(older_than: timedelta = PRUNE_AFTER) -> int:
    """Delete the change rows older than ``older_than``; returns how many went.

    The newest row always stays, so that SQLite never numbers a new row with an ID a
    listener has already seen.
    """
    latest = await _latest_change_id()
    cutoff = datetime.now(UTC) - older_than
    deleted: int = await KeyChange.filter(created_at__lt=cutoff, id__lt=latest).delete()
    return deleted
