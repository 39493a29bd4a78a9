"""Structured logs: one JSON object a line, and a pure ASGI middleware that logs each request.

A log line never carries a secret: the formatter writes the exception *type* only (no message,
no traceback, which could quote SQL or a value), masks anything shaped like a Key Secret or an
argon2 hash, and the libraries that log SQL with its parameters at DEBUG are held at WARNING.

Records are queued and written by a thread (:class:`JsonLinesHandler`): a slow or full stderr
pipe never blocks the event loop, and formatting the JSON is not done by the request. The
request log's own line, when that handler is the only one to see it, is queued without a
:class:`logging.LogRecord` (which costs more than the rest of a warm API call).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import copy
import json
import logging
import logging.config
import logging.handlers
import random
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple, TextIO

import orjson
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wfa_keys.deadline import Deadline, DeadlineWatch

__all__ = [
    "REQUEST_ID_HEADER",
    "AddHeaders",
    "JsonFormatter",
    "JsonLinesHandler",
    "RequestLogMiddleware",
    "configure_logging",
    "current_request_id",
    "logging_config",
]

REQUEST_ID_HEADER = "X-Request-ID"

#: Libraries that log SQL and its parameters (hashes among them) or connection settings at
#: DEBUG/INFO; they are kept at WARNING whatever the service's level.
QUIET_LOGGERS = ("tortoise", "aiosqlite", "asyncpg", "uvicorn.access", "multipart")

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "wfa_request_id", default=None
)
_INCOMING_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
# Key Secrets (``wfas_`` + base62) and argon2 hashes, should one ever reach a message by mistake.
_SECRET_SHAPES = re.compile(r"wfas_[A-Za-z0-9]+|\$argon2(?:id|i|d)\$[^\s\"']*")
_MAX_ROUTE = 200

logger = logging.getLogger("wfa_keys.request")


def current_request_id() -> str | None:
    """The ID of the request being handled in this task, or None outside a request."""
    return _request_id.get()


def redact(text: str) -> str:
    """``text`` with anything shaped like a Key Secret or an argon2 hash masked."""
    # Two substring checks cost a tenth of the regex, and almost no text has either shape.
    if "wfas_" not in text and "$argon2" not in text:
        return text
    return _SECRET_SHAPES.sub("[redacted]", text)


def _json_line(
    created: float,
    levelname: str,
    name: str,
    message: str,
    request_id: str | None,
    fields: dict[str, Any],
    exception: str | None,
) -> str:
    entry: dict[str, Any] = {
        "time": _iso_time(created),
        "level": levelname,
        "logger": name,
        "message": redact(message),
    }
    if request_id is not None:
        entry["request_id"] = request_id
    entry.update(fields)
    if exception is not None:
        entry["exception"] = exception
    try:
        # orjson (already installed with Tortoise's speed-ups) writes a line in a tenth of the
        # time of json.dumps, and the thread writing the lines shares the server's CPU.
        return orjson.dumps(entry).decode()
    except TypeError:
        # What orjson refuses and json writes: a lone surrogate, an int past 64 bits, a NaN.
        # A value of no JSON type fails here too: logging reports it and drops the record.
        # ASCII: a lone surrogate (text a client sent) escaped, or a stream that encodes
        # strictly would refuse the whole batch of lines.
        return json.dumps(entry, separators=(",", ":"))


def _iso_time(created: float) -> str:
    """``created`` (a Unix time, not before 1970) as ISO 8601 in UTC to the millisecond, as
    ``datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")`` writes it;
    the part up to the second is made once a second."""
    seconds = int(created)
    # Rounded to the microsecond first, as datetime.fromtimestamp rounds (half to even).
    microseconds = round((created - seconds) * 1_000_000)
    if microseconds == 1_000_000:
        seconds, microseconds = seconds + 1, 0
    return f"{_iso_prefix(seconds)}.{microseconds // 1000:03d}+00:00"


def _iso_prefix(seconds: int) -> str:
    """Unix time ``seconds`` as ISO 8601 in UTC up to the second, made once a second."""
    global _iso_second
    cached_second, prefix = _iso_second
    if seconds != cached_second:
        prefix = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _iso_second = (seconds, prefix)
    return prefix


# The second last formatted and its text: lines come in order, many a second.
_iso_second: tuple[int, str] = (-1, "")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message and request fields.

    Exceptions appear as their type name only: exception text and tracebacks can quote SQL,
    parameters or secrets, so they never reach the log.
    """

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None) or current_request_id()
        fields = {}
        for name in _REQUEST_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                fields[name] = value
        exception = getattr(record, "exception_type", None)  # set by JsonLinesHandler
        if record.exc_info and record.exc_info[0] is not None:
            exception = record.exc_info[0].__name__
        return _json_line(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            request_id,
            fields,
            exception,
        )


_REQUEST_FIELDS = ("method", "route", "status", "duration_ms")


class _RequestLine(NamedTuple):
    """A request's log line as :class:`RequestLogMiddleware` hands it over, unformatted: the
    message and fields are made by the thread that writes it (see :func:`_request_entry`)."""

    created_ns: int  # Unix time in nanoseconds
    level: int
    request_id: str
    method: str | None
    path: str  # the request's path as received: the route is made of it (see _route)
    status: int
    duration: float  # seconds
    exception: str | None


def _request_entry(line: _RequestLine) -> tuple[str, dict[str, Any]]:
    """The message and fields of a request's log line."""
    route = _route(line.path)
    if line.exception is not None:
        message = f"request failed: {line.exception}"
    else:
        message = f"{line.method} {route} {line.status}"
    fields = {
        "method": line.method,
        "route": route,
        "status": line.status,
        "duration_ms": round(line.duration * 1000, 2),
    }
    return message, fields


_LEVEL_NAMES = {logging.INFO: "INFO", logging.WARNING: "WARNING"}


def _plain_request_json(line: _RequestLine) -> str | None:
    """The request's JSON line, built as one string from parts kept per method, path and
    status, when no value needs escaping or masking (almost every request); None otherwise,
    and for a failed request: :func:`_json_line` writes those.

    The two write the same JSON values; this one writes ``duration_ms`` with its two decimals
    (``1.50`` where orjson writes ``1.5``), and the time truncated from nanoseconds. The
    thread writing the lines shares the server's CPU: this costs about two fifths of
    building the entry as a dict for orjson (10,200 instructions against 26,400).
    """
    created_ns, level, request_id, method, path, status, duration, exception = line
    if exception is not None or type(status) is not int or type(path) is not str:
        return None
    # Made by RequestLogMiddleware: hex, or an incoming ID it checked. Checked again here, for
    # the line is written with it as it is.
    if not (request_id.isascii() and request_id.isalnum()) and not _INCOMING_ID.fullmatch(
        request_id
    ):
        return None
    # Keyed by the path as received: the route (cut and masked) is made once per key.
    key = (method, path, status)
    parts = _plain_parts.get(key)
    if parts is None or parts[0] != level:
        parts = _message_parts(line, key)
        if parts is None:
            return None
    duration_ms = duration * 1000
    if not 0 <= duration_ms < 1e15:  # no exponent in the text (and no NaN)
        return None
    _level, head, tail = parts
    return f'{{"time":"{_iso_time_ns(created_ns)}{head}{request_id}{tail}{duration_ms:.2f}}}'


def _message_parts(
    line: _RequestLine, key: tuple[str | None, str, int]
) -> tuple[int, str, str] | None:
    """What a request line holds around its time, request ID and duration, kept under
    ``key``; None when a value would need escaping or masking (or the level has no name
    here, or the path is longer than a route: such keys are not kept)."""
    levelname = _LEVEL_NAMES.get(line.level)
    method, path = line.method, line.path
    if levelname is None or type(method) is not str or len(path) > _MAX_ROUTE:
        return None
    route = _route(path)
    message = f"{method} {route} {line.status}"
    # The message holds the method and the route, checked at once. The slow path masks a
    # secret's shape.
    if not _JSON_PLAIN.fullmatch(message) or redact(message) is not message:
        return None
    parts = (
        line.level,
        f'","level":"{levelname}","logger":"{logger.name}","message":"{message}","request_id":"',
        f'","method":"{method}","route":"{route}","status":{line.status},"duration_ms":',
    )
    if len(_plain_parts) >= _MAX_PLAIN_PARTS:
        _plain_parts.clear()
    _plain_parts[key] = parts
    return parts


# What a JSON string may hold as it is: printable ASCII but the quote and the backslash.
_JSON_PLAIN = re.compile(r"[ !#-\[\]-~]*")
# (method, path, status) -> its line's parts (level, head, tail), kept by the thread writing.
_plain_parts: dict[tuple[str | None, str, int], tuple[int, str, str]] = {}
_MAX_PLAIN_PARTS = 4096


def _iso_time_ns(created_ns: int) -> str:
    """``created_ns`` (Unix nanoseconds) as ISO 8601 in UTC, truncated to the millisecond;
    made once a millisecond (lines come in order, many a millisecond)."""
    global _iso_millisecond
    milliseconds = created_ns // 1_000_000
    cached, text = _iso_millisecond
    if milliseconds != cached:
        seconds, millisecond = divmod(milliseconds, 1000)
        text = f"{_iso_prefix(seconds)}.{millisecond:03d}+00:00"
        _iso_millisecond = (milliseconds, text)
    return text


_iso_millisecond: tuple[int, str] = (-1, "")


#: How long the writing thread waits for more lines before writing what it has.
WRITE_INTERVAL = 0.05
#: Lines formatted between two writes, so that the thread releases the GIL for the write.
_WRITE_BATCH = 200


class JsonLinesHandler(logging.Handler):
    """Formats records with :class:`JsonFormatter` and writes them from a thread of its own.

    ``emit`` only appends the record to a queue: a slow or full stderr pipe never blocks the
    event loop, and formatting the JSON is not done by the request. The thread writes what
    has queued up about every :data:`WRITE_INTERVAL` seconds, in one write. What depends on
    the logging task is settled before the record leaves it: the message is rendered and the
    request ID read from the context. The exception keeps its type only (the formatter
    writes nothing else), so no traceback and no frame crosses to the thread.
    :meth:`flush` waits until everything queued so far is written; closing the handler
    (which :func:`logging.shutdown` does at exit, and :func:`logging.config.dictConfig` does
    when it replaces it) writes what is left and stops the thread.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.stream = sys.stderr if stream is None else stream
        # Not the handler's own lock, which ``handle`` holds while ``emit`` may wait for us.
        self._stream_lock = threading.Lock()
        # deque.append and popleft are atomic: no lock between the loop and the thread.
        self._queue: collections.deque[logging.LogRecord | _RequestLine | threading.Event] = (
            collections.deque()
        )
        self._wake = threading.Event()
        self._running = True
        self._thread = threading.Thread(
            target=self._write_forever, name="wfa-keys log writer", daemon=True
        )
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        # A copy: other handlers (pytest's, for one) may still want the full record.
        record = copy.copy(record)
        if record.exc_info:
            exc_type = record.exc_info[0]
            record.exc_info, record.exc_text = None, None
            record.exception_type = exc_type.__name__ if exc_type is not None else None
        record.msg, record.args = record.getMessage(), None
        if getattr(record, "request_id", None) is None:
            record.request_id = _request_id.get()
        record.stack_info = None
        self._queue.append(record)
        if record.name.startswith("uvicorn") or not self._running:
            # uvicorn ends the process by re-raising the signal that stopped it, right after
            # its last line, and no exit handler runs then: its lines are written before
            # this returns (they are few: starting, stopping, and its own errors). Once the
            # handler is closed, no thread writes: the line is written now.
            self.flush()

    def append_request_line(self, line: _RequestLine) -> None:
        """Queue a request log line without building a LogRecord (see RequestLogMiddleware)."""
        self._queue.append(line)
        if not self._running:
            self._write_queued()

    def setStream(self, stream: TextIO) -> None:
        """Write to ``stream`` from now on (what is queued goes to the old one first)."""
        self.flush()
        with self._stream_lock:
            self.stream = stream

    def flush(self) -> None:
        """Wait until the thread has written every record queued so far."""
        if self._running and self._thread.is_alive():
            written = threading.Event()
            self._queue.append(written)
            self._wake.set()
            # Should the handler close meanwhile, the thread may be gone before our turn.
            while not written.wait(WRITE_INTERVAL):
                if not self._thread.is_alive():
                    self._write_queued()
                    return
        else:
            self._write_queued()

    def close(self) -> None:
        if self._running:
            self._running = False
            self._wake.set()
            self._thread.join()
        self._write_queued()
        super().close()

    def _write_forever(self) -> None:
        while self._running:
            self._wake.wait(WRITE_INTERVAL)
            self._wake.clear()
            self._write_queued()

    def _write_queued(self) -> None:
        lines: list[str] = []
        while True:
            try:
                item = self._queue.popleft()
            except IndexError:
                break
            if isinstance(item, threading.Event):
                self._write(lines)
                lines = []
                item.set()
                continue
            try:
                # Almost every item is a request line that needs no escaping.
                line = _plain_request_json(item) if type(item) is _RequestLine else None
                lines.append(self._format(item) if line is None else line)
            except Exception:  # logging's own way: report it, drop the record, go on
                if isinstance(item, logging.LogRecord):
                    self.handleError(item)
                continue
            if len(lines) >= _WRITE_BATCH:
                self._write(lines)
                lines = []
        self._write(lines)

    def _format(self, item: logging.LogRecord | _RequestLine) -> str:
        if isinstance(item, _RequestLine):  # one that _plain_request_json left to this
            message, fields = _request_entry(item)
            return _json_line(
                item.created_ns / 1e9,
                logging.getLevelName(item.level),
                logger.name,
                message,
                item.request_id,
                fields,
                item.exception,
            )
        return self.format(item)

    def _write(self, lines: list[str]) -> None:
        if not lines:
            return
        # A closed or broken stream: there is nothing to report the failure to.
        with self._stream_lock, contextlib.suppress(OSError, ValueError):
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` configuration: JSON lines on stderr at ``level``.

    Also given to uvicorn as ``log_config``, so that each worker process configures itself.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "stderr": {
                "class": "wfa_keys.logs.JsonLinesHandler",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            # uvicorn installs handlers of its own on these; ours (the root's) take over.
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            **{
                name: {
                    "level": max(logging.WARNING, logging.getLevelName(level)),
                    "propagate": True,
                }
                for name in QUIET_LOGGERS
            },
        },
    }


def configure_logging(level: str = "INFO") -> None:
    """Send every log record to stderr as one JSON object a line, at ``level`` and above."""
    logging.config.dictConfig(logging_config(level))


def _route(path: str) -> str:
    """A request's path as its log line gives it, cut and masked (the query string, which
    may carry anything a client sent, is never part of it)."""
    return redact(str(path)[:_MAX_ROUTE])


#: Adds headers, in place, to a response's raw header list (see ``RequestLogMiddleware``).
AddHeaders = Callable[[Scope, list[tuple[bytes, bytes]]], None]

_ID_NAME = REQUEST_ID_HEADER.lower().encode()


class RequestLogMiddleware:
    """Gives each HTTP request an ID and logs one line when it ends.

    The ID is put in ``scope["state"]["request_id"]`` (where the GraphQL error masking reads
    it), in the log context of everything logged while handling the request, and in the
    ``X-Request-ID`` response header. An incoming ``X-Request-ID`` of 8 to 64 safe characters
    is kept, so that a proxy's ID follows the request; anything else is replaced.

    ``add_headers(scope, headers)``, when given, adds the headers every response carries (the
    security headers) in the same pass over the response start, which saves the service a
    middleware layer on every call.

    An app that fails before it answers gets Starlette's own answer to that (a plain-text
    500, as its ``ServerErrorMiddleware`` sends when not debugging) from here, with the ID and
    the headers, and the error goes on up to the server, which logs it.

    With a ``deadline``, an app that has not started its answer within ``deadline.seconds``
    gets the deadline's 503 from here (:mod:`wfa_keys.deadline`), with the ID and headers;
    what the app sends after that is dropped, and an error it raises after that is logged as
    this request's line only (its client has had its answer).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        add_headers: AddHeaders | None = None,
        deadline: Deadline | None = None,
    ) -> None:
        self.app = app
        self.add_headers = add_headers
        self.deadline = deadline
        self._watch = DeadlineWatch(deadline.seconds) if deadline is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        # An incoming ID, kept when it is safe (a loop here: a frame less on every request).
        request_id: str | None = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _INCOMING_ID.fullmatch(candidate):
                    request_id = candidate
                break
        if request_id is None:
            # 128 random bits in hex, like uuid4().hex, without a system call per request
            # (which cost more than the rest of the request log): the ID correlates log lines,
            # it is no secret and guards nothing. (to_bytes().hex() writes what
            # f"{bits:032x}" would.)
            request_id = random.getrandbits(128).to_bytes(16, "big").hex()
        scope.setdefault("state", {})["request_id"] = request_id
        token = _request_id.set(request_id)
        path = scope.get("path", "")
        status = 0  # until the response starts
        late = False  # answered by the deadline: the app's own messages are dropped
        add_headers = self.add_headers
        # Monotonic: the deadline's clock too (on Linux, the one perf_counter reads).
        started = time.monotonic()

        # A function returning send's awaitable, not a coroutine of its own: one frame less on
        # each message (ASGI's send is any callable returning an awaitable).
        def send_with_id(message: Message) -> Awaitable[None]:
            nonlocal status
            if late:
                return _dropped()
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                # A loop that finds no X-Request-ID (an app's own is rare; then the list is
                # filtered) costs less than a comprehension, a frame of its own in 3.11.
                for name, _value in headers:
                    if name.lower() == _ID_NAME:
                        headers = [(k, v) for k, v in headers if k.lower() != _ID_NAME]
                        break
                headers.append((_ID_NAME, request_id.encode()))
                if add_headers is not None:
                    add_headers(scope, headers)
                # In place, as Starlette's own middlewares change a message's headers.
                message["headers"] = headers
            return send(message)

        late_answer: asyncio.Task[None] | None = None
        deadline, watch = self.deadline, self._watch
        if deadline is not None and watch is not None:

            def answer_late() -> None:
                nonlocal late, late_answer
                if status != 0:
                    return

                def send_late(message: Message) -> Awaitable[None]:
                    # send_with_id drops what comes once ``late`` is set, which is the app's;
                    # the deadline's own answer passes (the check is made before it returns).
                    nonlocal late
                    late = False
                    try:
                        return send_with_id(message)
                    finally:
                        late = True

                late = True
                answer = deadline.response(scope)
                late_answer = asyncio.create_task(answer(scope, receive, send_late))

            # One timer for every request in flight (DeadlineWatch), not one each.
            watch.add(answer_late, started)

        exception: str | None = None
        try:
            await self.app(scope, receive, send_with_id)
        except HTTPException as exc:
            # Raised through the stack on purpose (the body limit's 413): not a failure.
            status = exc.status_code
            if late:
                return
            raise
        except Exception as exc:
            exception = type(exc).__name__
            if late:
                # The client has had its 503: the failure is this request's line, no more.
                return
            if status == 0:
                # Nothing was sent: the answer Starlette's ServerErrorMiddleware gives, sent here
                # with the request's ID and headers (an app mounted on the service's API lane
                # has no error layer of its own), before the server logs the error.
                with contextlib.suppress(Exception):
                    await _SERVER_ERROR(scope, receive, send_with_id)
            status = 500
            raise
        finally:
            if watch is not None:
                watch.discard(answer_late)
            if late_answer is not None:
                await late_answer
            _request_id.reset(token)
            # Only what the request knows: the message and fields are made where the line is
            # written, off the request's path.
            if exception is not None:
                level = logging.ERROR
            else:
                # No response at all: the server answers 500.
                status = status or 500
                level = logging.WARNING if status >= 500 else logging.INFO
            # tuple.__new__ rather than the named tuple's own __new__, a Python function (a
            # frame) that does only this.
            line = _new_line(
                _RequestLine,
                (
                    time.time_ns(),
                    level,
                    request_id,
                    scope.get("method"),
                    path,
                    status,
                    time.monotonic() - started,
                    exception,
                ),
            )
            _log_request(line)


_new_line = tuple.__new__
_SERVER_ERROR = PlainTextResponse("Internal Server Error", status_code=500)


async def _dropped() -> None:
    """What sending gives an app whose request the deadline answered: nothing is sent."""


def _log_request(line: _RequestLine) -> None:
    """Log a request's line: straight to the JSON handler when it is the only one to see it."""
    if not logger.isEnabledFor(line.level):
        return
    handler = _sole_json_handler(line.level)
    if handler is not None:
        handler.append_request_line(line)
        return
    message, fields = _request_entry(line)
    extra: dict[str, Any] = {**fields, "request_id": line.request_id}
    if line.exception is not None:
        extra["exception_type"] = line.exception
    # findCaller would name this function: the line's fields say where it comes from.
    record = logger.makeRecord(logger.name, line.level, "", 0, message, (), None, extra=extra)
    record.created = line.created_ns / 1e9
    logger.handle(record)


def _sole_json_handler(level: int) -> JsonLinesHandler | None:
    """The handler a ``wfa_keys.request`` record at ``level`` reaches, if it is the only one
    and a :class:`JsonLinesHandler` and nothing filters on the way; None otherwise."""
    found: JsonLinesHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if level < handler.level:
                continue
            if found is not None or type(handler) is not JsonLinesHandler or handler.filters:
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    return found
