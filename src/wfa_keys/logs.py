"""Structured logs: one JSON object a line, and a pure ASGI middleware that logs each request.

A log line never carries a secret: the formatter writes the exception *type* only (no message,
no traceback, which could quote SQL or a value), masks anything shaped like a Key Secret or an
argon2 hash, and the libraries that log SQL with its parameters at DEBUG are held at WARNING.
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.config
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "REQUEST_ID_HEADER",
    "JsonFormatter",
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
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
        return json.dumps(entry, ensure_ascii=False)


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` configuration: JSON lines on stderr at ``level``.

    Also given to uvicorn as ``log_config``, so that each worker process configures itself.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "wfa_keys.logs.JsonFormatter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
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


class RequestLogMiddleware:
    """Gives each HTTP request an ID and logs one line when it ends.

    The ID is put in ``scope["state"]["request_id"]`` (where the GraphQL error masking reads
    it), in the log context of everything logged while handling the request, and in the
    ``X-Request-ID`` response header. An incoming ``X-Request-ID`` of 8 to 64 safe characters
    is kept, so that a proxy's ID follows the request; anything else is replaced.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = _request_id.set(request_id)
        route = _route(scope)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() != REQUEST_ID_HEADER.lower().encode()
                ]
                headers.append((REQUEST_ID_HEADER.lower().encode(), request_id.encode()))
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
