"""One write per response: WriteCoalescingTransport alone, and uvicorn serving over it."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import socket
import time
from typing import Any

import httpx2
import pytest
import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from support.threaded_server import serving
from wfa_keys.request_heads import HeadLimits
from wfa_keys.transport import CoalescingHttpProtocol, WriteCoalescingTransport


class RecordingTransport:
    """What a transport was asked to do, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.closing = False
        self.buffered = 0

    def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))

    def writelines(self, chunks: Any) -> None:
        self.calls.append(("writelines", [bytes(chunk) for chunk in chunks]))

    def close(self) -> None:
        self.calls.append(("close", None))
        self.closing = True

    def write_eof(self) -> None:
        self.calls.append(("write_eof", None))

    def abort(self) -> None:
        self.calls.append(("abort", None))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8000) if name == "sockname" else default


def wrapped() -> tuple[WriteCoalescingTransport, RecordingTransport]:
    inner = RecordingTransport()
    return WriteCoalescingTransport(inner, asyncio.get_running_loop()), inner  # type: ignore[arg-type]


async def next_turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_a_start_and_a_body_written_in_one_turn_leave_in_one_call() -> None:
    transport, inner = wrapped()
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert inner.calls == []
    transport.write(b"body")
    assert inner.calls == [("writelines", [b"HTTP/1.1 200 OK\r\n\r\n", b"body"])]
    await next_turn()
    assert len(inner.calls) == 1


async def test_a_write_alone_leaves_at_the_end_of_the_turn() -> None:
    transport, inner = wrapped()
    transport.write(b"headers")
    assert transport.get_write_buffer_size() == len(b"headers")
    await next_turn()
    assert inner.calls == [("write", b"headers")]
    assert transport.get_write_buffer_size() == 0


async def test_a_buffer_the_caller_reuses_is_copied() -> None:
    transport, inner = wrapped()
    buffer = bytearray(b"first")
    transport.write(buffer)
    buffer[:] = b"later"
    await next_turn()
    assert inner.calls == [("write", b"first")]


async def test_what_is_held_goes_first_before_writelines_close_and_eof() -> None:
    for finish, expected in (
        ("writelines", ("writelines", [b"b", b"c"])),
        ("write_eof", ("write_eof", None)),
        ("close", ("close", None)),
    ):
        transport, inner = wrapped()
        transport.write(b"a")
        if finish == "writelines":
            transport.writelines([b"b", b"c"])
        else:
            getattr(transport, finish)()
        assert inner.calls == [("write", b"a"), expected]
        await next_turn()
        assert len(inner.calls) == 2


async def test_abort_and_a_lost_connection_drop_what_is_held() -> None:
    transport, inner = wrapped()
    transport.write(b"a")
    transport.abort()
    await next_turn()
    assert inner.calls == [("abort", None)]

    transport, inner = wrapped()
    transport.write(b"a")
    inner.closing = True  # the peer went away meanwhile
    await next_turn()
    assert inner.calls == []


async def test_everything_else_is_the_transports_own() -> None:
    transport, _inner = wrapped()
    assert transport.get_extra_info("sockname") == ("127.0.0.1", 8000)
    assert transport.is_closing() is False


# -- uvicorn over it -------------------------------------------------------------------------


async def plain(request: Request) -> Response:
    return PlainTextResponse("x" * int(request.query_params.get("size", "10")))


async def streamed(request: Request) -> Response:
    async def parts() -> Any:
        for number in range(20):
            yield f"part {number};".encode()
            await asyncio.sleep(0.001 if number % 2 else 0)

    return StreamingResponse(parts())


async def echo(request: Request) -> Response:
    return Response(await request.body())


async def websocket_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    for _ in range(3):
        await websocket.send_text("echo " + await websocket.receive_text())
    await websocket.close()


APP = Starlette(
    routes=[
        Route("/plain", plain),
        Route("/streamed", streamed),
        Route("/echo", echo, methods=["POST"]),
        WebSocketRoute("/ws", websocket_echo),
    ]
)


def test_uvicorn_over_the_coalescing_transport_answers_whole_and_in_order() -> None:
    with serving(APP, http=CoalescingHttpProtocol) as url, httpx2.Client(base_url=url) as client:
        for _ in range(3):  # one keep-alive connection, answer after answer
            assert client.get("/plain").text == "x" * 10
        # Larger than the transport's write buffer limit: flow control still works.
        assert client.get("/plain", params={"size": 8_000_000}).text == "x" * 8_000_000
        assert client.get("/streamed").text == "".join(f"part {n};" for n in range(20))
        body = bytes(range(256)) * 4096
        assert client.post("/echo", content=body).content == body
        answer = client.get("/plain", headers={"Connection": "close"})
        assert answer.text == "x" * 10


def test_pipelined_requests_get_their_answers_in_order() -> None:
    with serving(APP, http=CoalescingHttpProtocol) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            request = "GET /plain?size={} HTTP/1.1\r\nHost: t\r\n\r\n"
            sock.sendall("".join(request.format(size) for size in (3, 5, 7)).encode())
            received = b""
            while received.count(b"HTTP/1.1 200 OK") < 3 or not received.endswith(b"x" * 7):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in received.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b"xxx", b"xxxxx", b"xxxxxxx"]


def test_a_websocket_upgraded_from_such_a_connection_talks_both_ways() -> None:
    async def talk(url: str) -> list[str]:
        async with websockets.connect(url.replace("http://", "ws://") + "/ws") as socket_:
            answers = []
            for word in ("a", "b", "c"):
                await socket_.send(word)
                answers.append(str(await asyncio.wait_for(socket_.recv(), 10)))
            return answers

    with serving(APP, http=CoalescingHttpProtocol) as url:
        assert asyncio.run(talk(url)) == ["echo a", "echo b", "echo c"]


@pytest.mark.parametrize("path", ["/plain", "/streamed"])
def test_a_client_gone_before_the_answer_leaves_the_server_serving(path: str) -> None:
    with serving(APP, http=CoalescingHttpProtocol) as url:
        host, port = url.removeprefix("http://").split(":")
        for _ in range(5):
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        assert httpx2.get(url + "/plain").text == "x" * 10


# -- bounded request heads -------------------------------------------------------------------


class SmallHeads(CoalescingHttpProtocol):
    head_limits = HeadLimits(request_line=1024, header=2048, head=8192)


def exchange(url: str, data: bytes, *, chunk: int = 0, pause: float = 0.0) -> bytes:
    """Send ``data`` raw (in pieces of ``chunk`` bytes, ``pause`` s apart, when given), then
    read until the server closes."""
    host, port = url.removeprefix("http://").split(":")
    received = b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        try:
            for start in range(0, len(data), chunk or len(data)):
                sock.sendall(data[start : start + (chunk or len(data))])
                if pause:
                    time.sleep(pause)
        except OSError:
            pass  # the server may close while the rest is still on its way
        with contextlib.suppress(OSError):
            while chunk_ := sock.recv(65536):
                received += chunk_
    return received


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


GET = b"GET /plain HTTP/1.1\r\nHost: t\r\n"


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"GET /plain?" + b"q" * 1100 + b" HTTP/1.1\r\nHost: t\r\n\r\n", id="line"),
        pytest.param(GET + b"X-Big: " + b"b" * 2100 + b"\r\n\r\n", id="header"),
        pytest.param(
            GET + b"".join(b"X-%d: %s\r\n" % (n, b"s" * 1000) for n in range(9)) + b"\r\n",
            id="all",
        ),
    ],
)
def test_a_head_past_a_limit_is_answered_431_and_closed(head: bytes) -> None:
    with serving(APP, http=SmallHeads) as url:
        answer = exchange(url, head + b"GET /plain HTTP/1.1\r\nHost: t\r\n\r\n")
        assert status(answer) == 431
        assert answer.count(b"HTTP/1.1 ") == 1  # nothing after it was read as a request
        body = answer.split(b"\r\n\r\n", 1)[1]
        assert json.loads(body)["error"] == "request_header_fields_too_large"
        assert httpx2.get(url + "/plain").text == "x" * 10  # the server serves on


def test_heads_up_to_the_limits_are_answered() -> None:
    line = b"GET /plain?" + b"q" * (1024 - 22) + b" HTTP/1.1\r\n"
    header = b"X-Big: " + b"b" * (2048 - 9) + b"\r\n"
    assert (len(line), len(header)) == (1024, 2048)
    filler = b"".join(b"X-%d: %s\r\n" % (n, b"s" * 993) for n in range(5))
    head = line + b"Host: t\r\n" + header + filler
    head += b"X-Last: " + b"l" * (8192 - len(head) - 12) + b"\r\n\r\n"
    assert len(head) == 8192
    with serving(APP, http=SmallHeads) as url:
        answer = exchange(url, head + GET + b"Connection: close\r\n\r\n")
    assert answer.count(b"HTTP/1.1 200 OK") == 2


def test_a_head_trickling_in_is_refused_when_it_passes_the_limit() -> None:
    with serving(APP, http=SmallHeads) as url:
        head = GET + b"X-Big: " + b"b" * 4000
        answer = exchange(url, head, chunk=500, pause=0.01)
    assert status(answer) == 431


def test_bodies_are_not_heads_whatever_their_lines() -> None:
    # A body with a line longer than every head limit, pipelined between other requests.
    body = b"y" * 20_000
    post = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    requests = GET + b"\r\n" + post + post + GET + b"Connection: close\r\n\r\n"
    with serving(APP, http=SmallHeads) as url:
        answer = exchange(url, requests)
    assert answer.count(b"HTTP/1.1 200 OK") == 4
    assert answer.count(body) == 2


def test_keep_alive_pipelined_requests_are_each_counted_from_nothing() -> None:
    # Twenty heads of 3 KiB each: 60 KiB on one connection, each within its limit of 8 KiB.
    head = GET + b"X-Filler: " + b"f" * 1500 + b"\r\nX-More: " + b"m" * 1500 + b"\r\n\r\n"
    with serving(APP, http=SmallHeads) as url:
        answer = exchange(url, head * 19 + GET + b"Connection: close\r\n\r\n")
    assert answer.count(b"HTTP/1.1 200 OK") == 20


def test_uvicorn_is_a_release_the_protocol_was_tested_with() -> None:
    # wfa_keys.transport relies on uvicorn's httptools protocol: its data_received feeding the
    # parser, the parser's on_headers_complete/on_message_complete callbacks, the transport
    # and loop it keeps. A new release must be tested (this file) before the pin moves.
    assert uvicorn.__version__.startswith("0.55."), uvicorn.__version__
    assert issubclass(CoalescingHttpProtocol, HttpToolsProtocol)
    for name in (
        "data_received",
        "on_headers_complete",
        "on_message_complete",
        "send_400_response",
    ):
        assert callable(getattr(HttpToolsProtocol, name)), name
    source = inspect.getsource(HttpToolsProtocol.data_received)
    assert "self.parser.feed_data(data)" in source
    assert "self.transport = transport" in inspect.getsource(HttpToolsProtocol.connection_made)


def test_a_431_behind_pipelined_requests_follows_their_answers_in_order() -> None:
    too_large = GET + b"X-Big: " + b"b" * 5000 + b"\r\n\r\n"
    with serving(APP, http=SmallHeads) as url:
        answer = exchange(url, (GET + b"\r\n") * 3 + too_large)
    statuses = [int(part.split(b" ", 1)[0]) for part in answer.split(b"HTTP/1.1 ")[1:]]
    assert statuses == [200, 200, 200, 431]
