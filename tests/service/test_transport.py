"""One write per response: WriteCoalescingTransport alone, and uvicorn serving over it."""

from __future__ import annotations

import asyncio
import logging
import socket
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

from support.threaded_server import serving
from wfa_keys.transport import (
    TESTED_UVICORN,
    CoalescingHttpProtocol,
    WriteCoalescingTransport,
    http_protocol,
)


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


# -- the uvicorn releases it was tested with ------------------------------------------------


def test_the_installed_uvicorn_is_a_release_the_transport_was_tested_with() -> None:
    # Fails on an upgrade of uvicorn: run this file's tests against the new release (they
    # drive real uvicorn servers over the transport), then add it to TESTED_UVICORN.
    release = ".".join(uvicorn.__version__.split(".")[:2])
    assert release in TESTED_UVICORN, (
        f"uvicorn {uvicorn.__version__} is not in wfa_keys.transport.TESTED_UVICORN"
    )
    assert http_protocol() is CoalescingHttpProtocol


def test_another_uvicorn_release_serves_with_uvicorns_own_protocol(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="wfa_keys.transport"):
        assert http_protocol("0.99.1") == "auto"
    assert "uvicorn 0.99.1 is not a release" in caplog.text
