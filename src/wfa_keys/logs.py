"""Structured logs: one JSON object a line, and a pure ASGI middleware that logs each request.

A log line never carries a secret: the formatter writes the exception *type* only (no message,
no traceback, which could quote SQL or a value), masks anything shaped like a Key Secret or an
argon2 hash, and the libraries that log SQL with its parameters at DEBUG are held at WARNING.

Records are queued and written by a thread (:class:`JsonLinesHandler`): a slow or full stderr
pipe never blocks the event loop, and formatting the JSON is not done by the request.
"""

from __future__ import annotations

import contextvars
import copy
import json
import logging
import logging.config
import logging.handlers
import queue
import random
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
    return _SECRET_SHAPES.sub("[redacted]", text)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message and request fields.

    Exceptions appear as their type name only: exception text and tracebacks can quote SQL,
    parameters or secrets, so they never reach the log.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id is not None:
            entry["request_id"] = request_id
        for name in ("method", "route", "status", "duration_ms"):
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        exception = getattr(record, "exception_type", None)  # set by JsonLinesHandler
        if record.exc_info and record.exc_info[0] is not None:
            exception = record.exc_info[0].__name__
        if exception is not None:
            entry["exception"] = exception
        return json.dumps(entry, ensure_ascii=False)


class JsonLinesHandler(logging.handlers.QueueHandler):
    """Queues each record; a thread formats it with :class:`JsonFormatter` and writes it.

    What depends on the logging task is settled before the record leaves it: the message is
    rendered and the request ID read from the context. The exception keeps its type only (the
    formatter writes nothing else), so no traceback and no frame crosses to the thread.
    :meth:`flush` waits until everything queued so far is written; closing the handler (which
    :func:`logging.shutdown` does at exit, and :func:`logging.config.dictConfig` does when it
    replaces it) writes what is left and stops the thread.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        # Created first so that logging.shutdown, which closes handlers newest first, closes
        # this handler (writing what is queued) before the stream handler it writes through.
        self.target = logging.StreamHandler(sys.stderr if stream is None else stream)
        self.target.setFormatter(JsonFormatter())
        super().__init__(queue.Queue())
        self.listener = logging.handlers.QueueListener(self.queue, self.target)
        self.listener.start()
        self._running = True

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if record.exc_info:
            # Other handlers (pytest's, for one) may still want the full record.
            exc_type = record.exc_info[0]
            record = copy.copy(record)
            record.exc_info, record.exc_text = None, None
            record.exception_type = exc_type.__name__ if exc_type is not None else None
        record.msg, record.args = record.getMessage(), None
        if getattr(record, "request_id", None) is None:
            record.request_id = _request_id.get()
        record.stack_info = None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        super().enqueue(record)
        if record.name.startswith("uvicorn"):
            # uvicorn ends the process by re-raising the signal that stopped it, right after
            # its last line, and no exit handler runs then: its lines are written before
            # this returns (they are few: starting, stopping, and its own errors).
            self.flush()

    def setStream(self, stream: TextIO) -> None:
        """Write to ``stream`` from now on (what is queued goes to the old one first)."""
        self.flush()
        self.target.setStream(stream)

    def flush(self) -> None:
        """Wait until the thread has written every record queued so far."""
        if self._running:
            self.queue.join()  # type: ignore[attr-defined]  # a queue.Queue, see __init__
        self.target.flush()

    def close(self) -> None:
        if self._running:
            self._running = False
            self.listener.stop()
        self.target.flush()
        super().close()


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


def _route(scope: Scope) -> str:
    # The path without its query string (which may carry anything a client sent), masked.
    return redact(str(scope.get("path", ""))[:_MAX_ROUTE])


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
    """

    def __init__(self, app: ASGIApp, *, add_headers: AddHeaders | None = None) -> None:
        self.app = app
        self.add_headers = add_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        # 128 random bits in hex, like uuid4().hex, without a system call per request (which
        # cost more than the rest of the request log): the ID correlates log lines, it is no
        # secret and guards nothing.
        request_id = _incoming_request_id(scope) or f"{random.getrandbits(128):032x}"
        scope.setdefault("state", {})["request_id"] = request_id
        token = _request_id.set(request_id)
        route = _route(scope)
        status = 500
        add_headers = self.add_headers
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != _ID_NAME]
                headers.append((_ID_NAME, request_id.encode()))
                if add_headers is not None:
                    add_headers(scope, headers)
                message = {**message, "headers": headers}
            await send(message)

        exception: type[BaseException] | None = None
        try:
            await self.app(scope, receive, send_with_id)
        except HTTPException as exc:
            # Raised through the stack on purpose (the body limit's 413): not a failure.
            status = exc.status_code
            raise
        except Exception as exc:
            exception = type(exc)
            status = 500
            raise
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            extra = {
                "method": scope.get("method"),
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
            }
            if exception is not None:
                logger.error("request failed: %s", exception.__name__, extra=extra, exc_info=False)
            else:
                level = logging.WARNING if status >= 500 else logging.INFO
                logger.log(level, "%s %s %s", scope.get("method"), route, status, extra=extra)
            _request_id.reset(token)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _INCOMING_ID.fullmatch(candidate) else None
    return None
