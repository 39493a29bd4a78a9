"""``GET /api/v1/keys/changes``: every change that affects authentication, as Server-Sent Events.

A remote app that caches verified credentials (``wfa_auth.RemoteAuthority``) follows this
stream to drop them within a second of a change. Each organization sees its own changes only.

Events (``data`` is JSON):

- ``ready`` first, ``{"resumed": true|false}``: whether the changes since the client's
  ``Last-Event-ID`` follow (else the client must have dropped what it cached, see ``reset``);
- ``key_changed`` ``{"key_id", "kind"}``: that key was disabled, enabled, regenerated,
  updated, deleted, or its grace period ended;
- ``key_changed`` with kind ``expired`` or ``grace_ended`` when a key's expiry or the end
  of its grace period passes (looked for every second);
- ``keys_changed`` ``{"key_id": null, "kind"}``: every key of the organization (an owner
  deactivated or demoted, the subscription turned off or on), or a batch of its keys
  disabled as inactive (kind ``auto_disabled``: the sweep announces each batch of up to
  thousands of keys once);
- ``reset`` ``{"reason"}``: the stream cannot say what changed (the client's position is
  older than the changes kept, or it fell behind): drop everything cached;
- ``heartbeat`` ``{}`` every :data:`HEARTBEAT_SECONDS` (at most 15 s apart, as promised): a
  client that hears nothing for longer knows the stream is dead.

Every event has an ``id``: the position to resume from with ``Last-Event-ID`` (every change
up to it was sent). The ``key_change`` table is read by one poller per process
(:class:`ChangeFeed`, every :data:`POLL_SECONDS`), shared by every stream of that process:
an idle stream holds no database connection, and N streams cost one query per poll. The
response carries ``Cache-Control: no-cache`` and ``X-Accel-Buffering: no`` so that a
reverse proxy (nginx) passes each event on at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from starlette.types import Receive, Scope, Send
from tortoise.expressions import Q

from wfa_auth import SCOPE_KEY, KeyRecord
from wfa_auth._responses import send_json
from wfa_auth._scopes import insufficient_scope
from wfa_keys.models import ApiKey, KeyChange
from wfa_keys.scopes import VERIFY_SCOPE

__all__ = ["HEARTBEAT_SECONDS", "POLL_SECONDS", "ChangeFeed", "ChangeStream"]

logger = logging.getLogger("wfa_keys.stream")

POLL_SECONDS = 0.2
HEARTBEAT_SECONDS = 3.0
#: A client further behind than this many changes is told to reset rather than replayed.
MAX_REPLAY = 1000
#: Queued events per stream; a client that reads slower than that is told to reset.
MAX_QUEUED = 1000
#: How often the feed looks for keys that expired or whose grace period ended.
DEADLINE_SECONDS = 1.0
#: A change ID not yet seen while later ones are (a PostgreSQL transaction that took its ID
#: earlier and commits later) is waited for this long before taken as rolled back.
GAP_SECONDS = 10.0

#: (event name, data) as queued for a stream.
Event = tuple[str, dict[str, Any]]
_END: Event = ("end", {})


def _event_of(key_id: str | None, kind: str | None) -> Event:
    if key_id is None:
        return "keys_changed", {"key_id": None, "kind": kind or "changed"}
    return "key_changed", {"key_id": key_id, "kind": kind or "changed"}


def _frame(name: str, data: dict[str, Any], event_id: int) -> bytes:
    payload = json.dumps(data, separators=(",", ":"))
    return f"id: {event_id}\nevent: {name}\ndata: {payload}\n\n".encode()


@dataclass(eq=False)
class _Subscriber:
    organization_id: str
    queue: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(MAX_QUEUED))
    overflowed: bool = False
    ending: bool = False

    def end(self) -> None:
        self.ending = True
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(_END)

    def put(self, event: Event) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True


class ChangeFeed:
    """Reads new ``key_change`` rows for every stream of this process, while any is open."""

    def __init__(self, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.poll_seconds = poll_seconds
        #: Every change up to this ID has been handed to the streams (or taken as rolled back).
        self.position = 0
        self._seen: set[int] = set()
        self._gap_since: float | None = None
        self._subscribers: set[_Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._from_empty = False
        self._ending = False
        self._wake = asyncio.Event()
        #: Keys that expired (or whose grace period ended) up to this time were announced.
        self._deadlines_checked: datetime | None = None

    @contextlib.contextmanager
    def subscription(self, organization_id: str) -> Iterator[_Subscriber]:
        """A queue of the organization's changes while inside; the poller runs while any is."""
        subscriber = _Subscriber(organization_id)
        self._subscribers.add(subscriber)
        if self._ending:
            subscriber.end()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="wfa-keys change feed")
        try:
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)

    def wake(self) -> None:
        """Poll now: a change was just committed by this process (others are polled for)."""
        self._wake.set()

    async def start(self) -> None:
        """Begin at the newest change (a stream replays older ones itself)."""
        if not self._started:
            self.position = await latest_change_id()
            # An empty table says nothing of the next ID (a PostgreSQL sequence goes on
            # counting after deletes): the first change seen sets the position.
            self._from_empty = self.position == 0
            self._started = True

    def end_streams(self) -> None:
        """End every open stream (the server is shutting down; clients reconnect elsewhere)."""
        self._ending = True
        for subscriber in list(self._subscribers):
            subscriber.end()

    @contextlib.asynccontextmanager
    async def ending_on_exit_signals(self) -> AsyncIterator[None]:
        """End the streams as soon as the server is told to stop (SIGTERM, SIGINT).

        uvicorn waits for open responses to finish before the app's shutdown: a stream never
        finishes by itself, so without this every stop would wait out the server's timeout.
        The server's own handler still runs after ours.
        """
        loop = asyncio.get_running_loop()
        previous: dict[int, Any] = {}

        def on_signal(number: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(self.end_streams)
            handler = previous.get(number)
            if callable(handler):
                handler(number, frame)

        try:
            for exiting in (signal.SIGTERM, signal.SIGINT):
                previous[exiting] = signal.getsignal(exiting)
                signal.signal(exiting, on_signal)
        except ValueError:  # not the main thread (an embedded server): streams end at timeout
            pass
        try:
            yield
        finally:
            for restored, handler in previous.items():
                with contextlib.suppress(ValueError, TypeError):
                    signal.signal(restored, handler)

    async def _run(self) -> None:
        while self._subscribers:
            try:
                await self.start()
                await self._poll()
                await self._announce_deadlines()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The streams stay open (heartbeats go on); the next poll catches up.
                logger.warning("cannot read key changes (%s)", type(exc).__name__)
            self._wake.clear()
            # asyncio.timeout, not wait_for, which can lose a cancellation on 3.11.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
        # Idle: the next stream starts from the newest change, not from a backlog.
        self._started = False
        self._seen.clear()
        self._gap_since = None
        self._deadlines_checked = None

    async def _poll(self) -> None:
        rows = (
            await KeyChange.filter(id__gt=self.position)
            .order_by("id")
            .limit(MAX_REPLAY)
            .values_list("id", "key_id", "organization_id", "kind")
        )
        for change_id, key_id, organization_id, kind in rows:
            number = int(change_id)
            if number in self._seen:
                continue
            self._seen.add(number)
            self._dispatch(organization_id, _event_of(key_id, kind))
        self._advance(time.monotonic())

    async def _announce_deadlines(self) -> None:
        """Keys that expired, or whose grace period ended, since the last look (once a
        second): no row announces those, since nothing was written when their time came.

        A client that missed one while disconnected loses nothing: the verify endpoint's
        ``cache_ttl`` never runs past either time.
        """
        now = datetime.now(UTC)
        since = self._deadlines_checked
        if since is not None and (now - since).total_seconds() < DEADLINE_SECONDS:
            return
        self._deadlines_checked = now
        if since is None:
            return
        rows = await ApiKey.filter(
            Q(expires_at__gt=since, expires_at__lte=now)
            | Q(previous_secret_expires_at__gt=since, previous_secret_expires_at__lte=now)
        ).values_list("key_id", "organization_id", "expires_at")
        for key_id, organization_id, expires_at in rows:
            expired = expires_at is not None and since < expires_at <= now
            kind = "expired" if expired else "grace_ended"
            self._dispatch(str(organization_id), _event_of(key_id, kind))

    def _dispatch(self, organization_id: str | None, event: Event) -> None:
        for subscriber in self._subscribers:
            if organization_id is None:
                # A change of unknown reach (written before 0009): every key, everywhere.
                subscriber.put(("keys_changed", {"key_id": None, "kind": "changed"}))
            elif subscriber.organization_id == organization_id:
                subscriber.put(event)

    def _advance(self, now: float) -> None:
        """Move :attr:`position` over the contiguous IDs seen, and over a gap held too long."""
        if self._from_empty and self._seen:
            self.position = min(self._seen) - 1
            self._from_empty = False
        while self._seen:
            if self.position + 1 in self._seen:
                self._seen.discard(self.position + 1)
                self.position += 1
                self._gap_since = None
                continue
            if self._gap_since is None:
                self._gap_since = now
            elif now - self._gap_since > GAP_SECONDS:
                self.position += 1  # rolled back, or committed so late it is replayed
                continue
            break


async def latest_change_id() -> int:
    """The highest ``key_change`` ID, 0 when there is none."""
    latest: list[Any] = await KeyChange.all().order_by("-id").limit(1).values_list("id", flat=True)
    return int(latest[0]) if latest else 0


def _last_event_id(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"last-event-id":
            text = value.decode("latin-1").strip()
            if text.isdigit() and len(text) < 20:
                return int(text)
            return None
    return None


_UNAVAILABLE = "The change stream is unavailable for a moment; try again shortly."
_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # nginx buffers proxied responses unless told otherwise: each event must go out at once.
    (b"x-accel-buffering", b"no"),
]


class ChangeStream:
    """The ASGI endpoint of the stream, for keys with the ``keys:verify`` scope."""

    def __init__(self, feed: ChangeFeed, *, heartbeat_seconds: float = HEARTBEAT_SECONDS) -> None:
        self.feed = feed
        self.heartbeat_seconds = heartbeat_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if VERIFY_SCOPE not in scope["auth"].scopes:
            await insufficient_scope(VERIFY_SCOPE)(scope, receive, send)
            return
        caller: KeyRecord = scope[SCOPE_KEY]
        after = _last_event_id(scope)
        disconnected = asyncio.Event()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    return

        with self.feed.subscription(caller.organization_id) as subscriber:
            try:
                first = await self._replay(subscriber, after)
            except Exception as exc:
                # Fail closed, as the middleware does when its store is down.
                logger.warning("cannot open a change stream (%s)", type(exc).__name__)
                await send_json(
                    send,
                    503,
                    {"error": "service_unavailable", "message": _UNAVAILABLE},
                    {"Retry-After": "5"},
                )
                return
            watcher = asyncio.create_task(watch())
            try:
                await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
                await send({"type": "http.response.body", "body": first, "more_body": True})
                await self._follow(send, subscriber, disconnected)
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        if not disconnected.is_set():
            with contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _replay(self, subscriber: _Subscriber, after: int | None) -> bytes:
        """The ``ready`` event, then the organization's changes since ``after`` (or a reset)."""
        await self.feed.start()
        # Subscribed first: whatever the feed hands on from now is queued already; the rows
        # read here may repeat some of it (dropping a cache twice is harmless).
        position = self.feed.position
        resumed = after is not None and await _can_resume(after, position)
        chunks = [b"retry: 1000\n"]
        if not resumed:
            chunks.append(_frame("ready", {"resumed": False}, position))
            if after is not None:
                chunks.append(_frame("reset", {"reason": "cannot_resume"}, position))
            return b"".join(chunks)
        assert after is not None
        rows = await (
            KeyChange.filter(id__gt=after)
            .order_by("id")
            .limit(MAX_REPLAY + 1)
            .values_list("key_id", "organization_id", "kind")
        )
        if len(rows) > MAX_REPLAY:
            chunks.append(_frame("ready", {"resumed": False}, position))
            chunks.append(_frame("reset", {"reason": "too_far_behind"}, position))
            return b"".join(chunks)
        chunks.append(_frame("ready", {"resumed": True}, after))
        for key_id, organization_id, kind in rows:
            if organization_id is None:
                chunks.append(_frame(*_event_of(None, "changed"), position))
            elif organization_id == subscriber.organization_id:
                chunks.append(_frame(*_event_of(key_id, kind), position))
        return b"".join(chunks)

    async def _follow(
        self, send: Send, subscriber: _Subscriber, disconnected: asyncio.Event
    ) -> None:
        queue = subscriber.queue
        gone = asyncio.create_task(disconnected.wait())
        try:
            while not (disconnected.is_set() or subscriber.ending):
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait(
                    {getter, gone},
                    timeout=self.heartbeat_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if getter not in done:
                    getter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await getter
                    if disconnected.is_set():
                        return
                    body = _frame("heartbeat", {}, self.feed.position)
                else:
                    name, data = getter.result()
                    if name == "end":
                        return
                    chunks = [_frame(name, data, self.feed.position)]
                    while not queue.empty():  # what arrived together goes out together
                        name, data = queue.get_nowait()
                        if name == "end":
                            return
                        chunks.append(_frame(name, data, self.feed.position))
                    body = b"".join(chunks)
                if subscriber.overflowed:
                    subscriber.overflowed = False
                    body = _frame("reset", {"reason": "too_far_behind"}, self.feed.position)
                await send({"type": "http.response.body", "body": body, "more_body": True})
        finally:
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gone


async def _can_resume(after: int, position: int) -> bool:
    """Whether every change after ``after`` is still kept: the row ``after`` itself is (rows
    are pruned oldest first), or nothing was ever written."""
    if after > position:
        return False  # from another database, or a position never given out
    if after == 0:
        return not await KeyChange.all().exists() or (await KeyChange.filter(id__lte=1).exists())
    return await KeyChange.filter(id=after).exists()
