"""Structured logs: the JSON lines, the request log, and no secret in any of them."""

from __future__ import annotations

import base64
import io
import json
import logging
import random
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send
from tortoise.context import TortoiseContext

from support.gql import CREATE_KEY, PASSWORD, Api
from support.settings import cheap_settings
from wfa_auth import generate_key_secret
from wfa_keys.app import create_app
from wfa_keys.browser import add_security_headers
from wfa_keys.logs import (
    QUIET_LOGGERS,
    JsonFormatter,
    JsonLinesHandler,
    RequestLogMiddleware,
    _json_line,
    _log_request,
    _plain_request_json,
    _request_entry,
    _RequestLine,
    _sole_json_handler,
    configure_logging,
    current_request_id,
)
from wfa_keys.models import AccessToken, ApiKey, Role, Session, User
from wfa_keys.users import create_user

ADMIN = "admin@acme.example"
# The test's own HTTP client logs each request it makes; only the service's logs are examined.
CLIENT_LOGGERS = ("httpx2", "httpcore2")
_NAMED = ("uvicorn", "uvicorn.error", *QUIET_LOGGERS, *CLIENT_LOGGERS)


@contextmanager
def json_logs(level: str = "DEBUG") -> Iterator[io.StringIO]:
    """The service's own logging configuration, writing into a buffer; undone afterwards."""
    root = logging.getLogger()
    saved_root = (root.level, root.handlers[:])
    saved = {
        name: (lg.level, lg.handlers[:], lg.propagate)
        for name in _NAMED
        if isinstance(lg := logging.getLogger(name), logging.Logger)
    }
    configure_logging(level)
    for name in CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    buffer = io.StringIO()
    handlers = root.handlers[:]
    for handler in handlers:
        assert isinstance(handler, JsonLinesHandler)
        handler.setStream(buffer)
    try:
        yield buffer
    finally:
        for handler in handlers:  # writes what is queued, stops the writing thread
            handler.close()
        root.setLevel(saved_root[0])
        root.handlers[:] = saved_root[1]
        for name, (level_, handlers, propagate) in saved.items():
            lg = logging.getLogger(name)
            lg.setLevel(level_)
            lg.handlers[:] = handlers
            lg.propagate = propagate


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    """Every line written, parsed (each must be one JSON object)."""
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def record(msg: str, *args: object, **attributes: Any) -> logging.LogRecord:
    entry = logging.LogRecord("wfa_keys.test", logging.INFO, __file__, 1, msg, args, None)
    entry.__dict__.update(attributes)
    return entry


# -- The formatter ------------------------------------------------------------------------


def test_a_record_becomes_one_json_object_with_the_request_fields() -> None:
    line = JsonFormatter().format(
        record(
            "POST %s %d",
            "/graphql",
            200,
            request_id="abc12345",
            route="/graphql",
            status=200,
            duration_ms=3.5,
        )
    )

    entry = json.loads(line)
    assert "\n" not in line
    assert entry["level"] == "INFO"
    assert entry["logger"] == "wfa_keys.test"
    assert entry["message"] == "POST /graphql 200"
    assert (entry["request_id"], entry["route"], entry["status"], entry["duration_ms"]) == (
        "abc12345",
        "/graphql",
        200,
        3.5,
    )
    assert entry["time"].endswith("+00:00")


@pytest.mark.parametrize(
    "created",
    # Within a second, across seconds (the reused part changes), a year's last second, just
    # below a millisecond and a second (rounded to the microsecond first, as datetime does).
    [
        1_790_000_000.0,
        1_790_000_000.5,
        1_790_000_000.999,
        1_790_000_001.25,
        1_798_761_599.75,
        1_790_000_002.0019999,
        1_790_000_002.9999997,
    ],
)
def test_the_time_is_iso_8601_in_utc_to_the_millisecond(created: float) -> None:
    line = JsonFormatter().format(record("at a time", created=created))

    expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    assert json.loads(line)["time"] == expected


def test_a_request_line_built_as_one_string_holds_what_the_json_line_holds() -> None:
    # Most request lines are built from parts kept per message, not through a dict and
    # orjson: same JSON values, and any value that would need escaping or masking goes
    # the slow way. 20,000 lines of random methods, paths, IDs, statuses and durations.
    rng = random.Random(8)
    odd_paths = ["/a b", '/a"b', "/a\\b", "/é", "/\x7f", "/x/wfas_" + "A" * 40, "/$argon2id$v=19$m"]
    fast_lines = 0
    for _ in range(20_000):
        created_ns = time.time_ns() + rng.randrange(-(10**17), 10**17)
        path = rng.choice(
            [
                "/api/v1/whoami",
                rng.choice(odd_paths),
                "/" + "".join(chr(rng.randrange(32, 127)) for _ in range(rng.randrange(40))),
                "/" + "x" * rng.randrange(195, 205),
            ]
        )
        request_id = rng.choice([f"{rng.getrandbits(128):032x}", "proxy.ID_12-3", 'a"b\\c1234'])
        duration = rng.choice(
            [0.0, rng.uniform(0, 0.01), rng.uniform(0, 10), 10 ** rng.uniform(-9, 14)]
        )
        line = _RequestLine(
            created_ns,
            rng.choice([logging.INFO, logging.WARNING, logging.ERROR]),
            request_id,
            rng.choice(["GET", "POST", "M-SEARCH", "wfas_X"]),
            path,
            rng.choice([200, 404, 500]),
            duration,
            None,
        )
        message, fields = _request_entry(line)
        level_name = logging.getLevelName(line.level)
        slow = json.loads(
            _json_line(
                created_ns / 1e9, level_name, "wfa_keys.request", message, request_id, fields, None
            )
        )
        built = _plain_request_json(line)
        if built is None:
            continue
        fast_lines += 1
        fast = json.loads(built)
        # Truncated to the millisecond from the nanoseconds (the slow path rounds a float).
        seconds, nanoseconds = divmod(created_ns, 10**9)
        expected_time = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        assert fast.pop("time") == f"{expected_time}.{nanoseconds // 10**6:03d}+00:00"
        slow.pop("time")
        assert fast == slow
        assert "wfas_" not in built
        assert "$argon2" not in built
    # Both ways were taken (a fifth of these lines can go the fast way).
    assert 2_000 < fast_lines < 20_000


def test_unusual_values_are_written_as_json_writes_them() -> None:
    # orjson writes the line; what it refuses (a lone surrogate, a 70-bit integer) still
    # becomes one line of JSON.
    line = JsonFormatter().format(record("odd \ud800", status=2**70))

    entry = json.loads(line)
    assert entry["message"] == "odd \ud800"
    assert entry["status"] == 2**70


def test_a_lone_surrogate_is_escaped_so_that_a_strict_utf8_stream_takes_the_line() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", write_through=True)
    handler = JsonLinesHandler(stream)
    try:
        handler.handle(record("unknown operation %s", "Q\ud800"))
        handler.handle(record("next"))
        handler.flush()
    finally:
        handler.close()

    written = [json.loads(line) for line in raw.getvalue().decode("utf-8").splitlines()]
    assert [entry["message"] for entry in written] == ["unknown operation Q\ud800", "next"]


def test_an_exception_is_logged_by_its_type_only() -> None:
    try:
        raise ValueError("INSERT INTO user VALUES ('$argon2id$v=19$secret')")
    except ValueError:
        entry = record("could not save")
        entry.exc_info = sys.exc_info()

    line = JsonFormatter().format(entry)

    assert json.loads(line)["exception"] == "ValueError"
    assert "INSERT" not in line
    assert "Traceback" not in line
    assert "argon2" not in line


def test_secrets_and_hashes_in_a_message_are_masked() -> None:
    secret = generate_key_secret()
    argon2_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"

    line = JsonFormatter().format(record("got %s and %s", secret, argon2_hash))

    assert secret not in line
    assert argon2_hash not in line
    assert json.loads(line)["message"] == "got [redacted] and [redacted]"


def test_configure_logging_keeps_sql_loggers_quiet_even_at_debug() -> None:
    with json_logs("DEBUG") as buffer:
        logging.getLogger("tortoise.db_client").debug("SELECT secret_hash FROM api_key")
        logging.getLogger("aiosqlite").debug("executing a query")
        logging.getLogger("wfa_keys.test").debug("kept")

    assert [entry["message"] for entry in lines(buffer)] == ["kept"]


class HeldStream(io.StringIO):
    """A stream whose writes wait until ``release`` is set, like a full stderr pipe."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        assert self.release.wait(timeout=30), "the test never released the stream"
        return super().write(text)


def test_logging_returns_before_the_line_is_written_and_flush_waits_for_it() -> None:
    stream = HeldStream()
    handler = JsonLinesHandler(stream)
    logger = logging.getLogger("wfa_keys.test.held")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("written by the %s", "thread")  # returns although the stream is held
        assert stream.getvalue() == ""
        stream.release.set()
        handler.flush()
        assert json.loads(stream.getvalue())["message"] == "written by the thread"
    finally:
        stream.release.set()
        logger.removeHandler(handler)
        logger.propagate = True
        handler.close()


def test_uvicorn_lines_are_written_before_logging_returns() -> None:
    # uvicorn stops the process by a signal right after its last line: nothing runs after.
    stream = io.StringIO()
    handler = JsonLinesHandler(stream)
    try:
        handler.handle(logging.LogRecord("uvicorn.error", logging.INFO, "", 1, "bye", None, None))

        assert json.loads(stream.getvalue())["message"] == "bye"
    finally:
        handler.close()


def test_closing_the_handler_writes_what_is_queued() -> None:
    stream = io.StringIO()
    handler = JsonLinesHandler(stream)
    for number in range(100):
        handler.handle(record("line %d", number))

    handler.close()

    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == [
        f"line {number}" for number in range(100)
    ]


# -- The request log ----------------------------------------------------------------------


async def endpoint(request: Request) -> PlainTextResponse:
    logging.getLogger("wfa_keys.test").info("inside the handler")
    if request.query_params.get("fail"):
        raise RuntimeError("database password is hunter2")
    return PlainTextResponse(f"{request.scope['state']['request_id']} {current_request_id()}")


def logged_app() -> RequestLogMiddleware:
    return RequestLogMiddleware(Starlette(routes=[Route("/things/{name}", endpoint)]))


async def test_each_request_gets_an_id_in_the_scope_the_logs_and_the_response() -> None:
    transport = httpx2.ASGITransport(app=logged_app())
    with json_logs("INFO") as buffer:
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as c:
            response = await c.get("/things/a?token=should-not-be-logged")

    request_id = response.headers["X-Request-ID"]
    assert response.text == f"{request_id} {request_id}"
    inner, summary = lines(buffer)
    assert inner["message"] == "inside the handler"
    assert inner["request_id"] == request_id
    assert summary["logger"] == "wfa_keys.request"
    assert (summary["request_id"], summary["route"], summary["status"]) == (
        request_id,
        "/things/a",
        200,
    )
    assert summary["duration_ms"] >= 0
    assert "should-not-be-logged" not in buffer.getvalue()
    assert current_request_id() is None


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("proxy-id-0123456789", True),
        ("short", False),
        ("has spaces in it", False),
        ('{"forged": "json"}', False),
        ("x" * 65, False),
    ],
)
async def test_an_incoming_request_id_is_kept_only_when_safe(incoming: str, kept: bool) -> None:
    transport = httpx2.ASGITransport(app=logged_app())
    with json_logs("INFO") as buffer:
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as c:
            response = await c.get("/things/a", headers={"X-Request-ID": incoming})

    assert (response.headers["X-Request-ID"] == incoming) is kept
    assert lines(buffer)[-1]["request_id"] == response.headers["X-Request-ID"]


async def test_a_failing_request_is_logged_with_the_exception_type_only() -> None:
    transport = httpx2.ASGITransport(app=logged_app(), raise_app_exceptions=False)
    with json_logs("INFO") as buffer:
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as c:
            response = await c.get("/things/a?fail=1")

    assert response.status_code == 500
    summary = lines(buffer)[-1]
    assert (summary["status"], summary["message"]) == (500, "request failed: RuntimeError")
    assert "hunter2" not in buffer.getvalue()


@pytest.mark.parametrize("started", [False, True], ids=["before-answering", "mid-answer"])
async def test_an_app_failing_without_an_error_layer_gets_starlettes_500_from_the_log(
    started: bool,
) -> None:
    # An app with no ServerErrorMiddleware of its own (the API on the service's lane): the
    # request log answers Starlette's plain 500, with the ID and the headers, unless the
    # app had started its answer; the error goes on up to the server either way.
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        if started:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("database password is hunter2")

    app = RequestLogMiddleware(failing, add_headers=add_security_headers)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "GET", "path": "/things/a", "headers": []}
    with json_logs("INFO") as buffer, pytest.raises(RuntimeError):
        await app(scope, receive, send)

    start = sent[0]
    headers = dict(start["headers"])
    assert headers[b"x-request-id"].decode() == scope["state"]["request_id"]
    assert re.fullmatch("[0-9a-f]{32}", scope["state"]["request_id"])
    assert headers[b"x-content-type-options"] == b"nosniff"
    if started:
        assert [m["type"] for m in sent] == ["http.response.start"]
        assert start["status"] == 200
    else:
        assert (start["status"], sent[1]["body"]) == (500, b"Internal Server Error")
        assert len(sent) == 2
    summary = lines(buffer)[-1]
    assert (summary["status"], summary["message"]) == (500, "request failed: RuntimeError")
    assert "hunter2" not in buffer.getvalue()


async def test_a_key_secret_in_a_path_is_masked_in_the_request_log() -> None:
    secret = generate_key_secret()
    transport = httpx2.ASGITransport(app=logged_app())
    with json_logs("INFO") as buffer:
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as c:
            await c.get(f"/things/{secret}")

    assert secret not in buffer.getvalue()
    assert lines(buffer)[-1]["route"] == "/things/[redacted]"


class Collect(logging.Handler):
    """Keeps the records it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("failed", [False, True])
def test_the_request_line_is_the_same_with_or_without_a_log_record(failed: bool) -> None:
    # Alone, the JSON handler gets the request line without a LogRecord; beside another
    # handler, both get a LogRecord. The line written is the same either way.
    request_logger = logging.getLogger("wfa_keys.request")
    written = []
    for other in (None, Collect()):
        stream = io.StringIO()
        handler = JsonLinesHandler(stream)
        request_logger.addHandler(handler)
        if other is not None:
            request_logger.addHandler(other)
        request_logger.propagate = False
        request_logger.setLevel(logging.INFO)
        try:
            assert (_sole_json_handler(logging.INFO) is handler) is (other is None)
            level = logging.ERROR if failed else logging.INFO
            exception = "KeyError" if failed else None
            _log_request(
                _RequestLine(
                    time.time_ns(),
                    level,
                    "a1b2c3d4e5",
                    "GET",
                    "/api/v1/whoami",
                    500,
                    0.0015,
                    exception,
                )
            )
        finally:
            request_logger.propagate = True
            request_logger.setLevel(logging.NOTSET)
            request_logger.removeHandler(handler)
            if other is not None:
                request_logger.removeHandler(other)
            handler.close()
        if other is not None:
            assert len(other.records) == 1
        (line,) = lines(stream)
        assert line.pop("time").endswith("+00:00")
        written.append(line)

    assert written[0] == written[1]
    assert written[0]["request_id"] == "a1b2c3d4e5"
    assert written[0].get("exception") == ("KeyError" if failed else None)
    assert written[0]["duration_ms"] == 1.5
    expected = "request failed: KeyError" if failed else "GET /api/v1/whoami 500"
    assert written[0]["message"] == expected


# -- Every operation at DEBUG, and no secret in the output ----------------------------------

OPERATIONS = """
query Me { me { email organization { name } } }
query Keys { apiKeys(first: 10) { nodes { id name status } totalCount } }
query Key($id: ID!) { apiKey(id: $id) { id name enabled } }
query Audit { auditEvents(first: 50) { nodes { action keyId actorEmail } } }
mutation Disable($id: ID!) { setApiKeyEnabled(id: $id, enabled: false) { enabled } }
mutation Enable($id: ID!) { setApiKeyEnabled(id: $id, enabled: true) { enabled } }
mutation Regenerate($id: ID!) { regenerateApiKey(id: $id) { keySecret } }
mutation Delete($id: ID!) { deleteApiKey(id: $id) { id } }
mutation Logout { logout }
"""


async def operation(api: Api, name: str, **variables: Any) -> dict[str, Any]:
    response = await api.client.post(
        "/graphql",
        json={"query": OPERATIONS, "operationName": name, "variables": variables},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def test_no_secret_password_session_token_or_hash_reaches_the_logs(
    db: TortoiseContext,
) -> None:
    settings = cheap_settings(database_url="unused", dev=True)
    await create_user(
        settings, email=ADMIN, password=PASSWORD, organization="Acme", role=Role.ADMIN
    )
    transport = httpx2.ASGITransport(app=create_app(settings), client=("127.0.0.1", 50000))
    secrets: list[str] = [PASSWORD]
    hashes: list[str] = [(await User.get(email=ADMIN)).password_hash]

    with json_logs("DEBUG") as buffer:
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as c:
            api = Api(c)
            wrong = await api.login(ADMIN, "not the password at all")
            assert wrong["errors"]
            assert "errors" not in await api.login(ADMIN)
            secrets.append(c.cookies["wfa_session"])
            hashes.extend(s.id_hash for s in await Session.all())

            body = await api(CREATE_KEY, name="logged key", days=30)
            key_id = body["data"]["createApiKey"]["apiKey"]["id"]
            secrets.append(body["data"]["createApiKey"]["keySecret"])
            hashes.append((await ApiKey.get(key_id=key_id)).secret_hash)
            await operation(api, "Me")
            await operation(api, "Keys")
            await operation(api, "Key", id=key_id)
            await operation(api, "Disable", id=key_id)
            await operation(api, "Enable", id=key_id)
            regenerated = await operation(api, "Regenerate", id=key_id)
            secret = regenerated["regenerateApiKey"]["keySecret"]
            secrets.append(secret)
            hashes.append((await ApiKey.get(key_id=key_id)).secret_hash)

            token_response = await c.post(
                "/api/v1/auth/api-key/token", json={"key_id": key_id, "key_secret": secret}
            )
            assert token_response.status_code == 200
            token = token_response.json()["access_token"]
            secrets.append(token)
            hashes.extend(t.token_hash for t in await AccessToken.all())
            basic = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
            secrets.append(basic)
            for headers in (
                {"Authorization": f"Bearer {token}"},
                {"Authorization": f"Basic {basic}"},
                {"X-API-Key-ID": key_id, "X-API-Key-Secret": secret},
            ):
                assert (await c.get("/api/v1/whoami", headers=headers)).status_code == 200
            refused = await c.get(
                "/api/v1/whoami",
                headers={"X-API-Key-ID": key_id, "X-API-Key-Secret": secrets[2]},  # old secret
            )
            assert refused.status_code == 401

            await operation(api, "Audit")
            await operation(api, "Delete", id=key_id)
            await operation(api, "Logout")
            assert (await api.post("query { me { email } }")).json() == {"data": {"me": None}}

    output = buffer.getvalue()
    entries = lines(buffer)
    assert any(entry["logger"] == "wfa_keys.request" for entry in entries)
    assert all(
        entry.get("request_id") for entry in entries if entry["logger"] == "wfa_keys.request"
    )
    for value in [*secrets, *hashes]:
        assert value not in output
    assert "$argon2" not in output
    assert "wfas_" not in output
    assert "Traceback" not in output
    assert "SELECT" not in output.upper().replace("SELECTION", "")


def test_a_record_after_closing_is_still_written() -> None:
    # Late lines (a task finishing during shutdown) reach the stream rather than a queue no
    # thread reads any more.
    stream = io.StringIO()
    handler = JsonLinesHandler(stream)
    handler.close()

    handler.handle(record("after the end"))

    assert json.loads(stream.getvalue())["message"] == "after the end"


class CountedStream(io.StringIO):
    """Counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_what_queued_up_is_written_in_one_write() -> None:
    stream = CountedStream()
    handler = JsonLinesHandler(stream)
    try:
        for number in range(100):
            handler.handle(record("line %d", number))
        handler.flush()
    finally:
        handler.close()

    assert len(stream.getvalue().splitlines()) == 100
    # The thread may have woken once while the lines were being queued; never once a line.
    assert stream.writes <= 2
