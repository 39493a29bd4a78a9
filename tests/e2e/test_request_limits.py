"""Bounded request heads in real processes: ``serve``, ``serve --workers 2`` and the documented
plain-uvicorn command (docs/limits.md).

The memory test is the attack that found the problem: four connections each sending a 64 MB
header, never finished, held open. uvicorn's httptools protocol alone buffered them whole
(RSS 164 to 386 MB); with the service's protocol, a head is refused with 431 when it passes
its limit and the rest is dropped as it arrives.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from support.serving import Server, start_server, start_uvicorn

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
ATTEMPTS = 4
ATTEMPT_BYTES = 64 * MIB
ATTACK_SECONDS = 60  # each attempt gives up by then, sent or not
GROWTH_BOUND = 20 * MIB
SLOW_WINDOW = 15  # s: a slow attempt (16 KiB every 5 ms) sends 48 MB at most meanwhile
PROTOCOL = "wfa_keys.transport:CoalescingHttpProtocol"
QUIET = {"WFA_LOG_LEVEL": "WARNING"}

Start = Callable[[Path, str, dict[str, str]], Server]


def serve(workdir: Path, database_url: str, env: dict[str, str]) -> Server:
    return start_server(workdir, database_url, env=env)


def serve_two_workers(workdir: Path, database_url: str, env: dict[str, str]) -> Server:
    return start_server(workdir, database_url, "--workers", "2", env=env)


def plain_uvicorn(workdir: Path, database_url: str, env: dict[str, str]) -> Server:
    return start_uvicorn(workdir, database_url, "--http", PROTOCOL, env=env)


PROCESSES = [
    pytest.param(serve, id="serve"),
    pytest.param(serve_two_workers, id="serve-workers-2"),
    pytest.param(plain_uvicorn, id="plain-uvicorn"),
]


def rss(pid: int) -> int:
    """Resident memory of process ``pid`` and of its descendants (``--workers``), in bytes."""
    total = 0
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += rss(int(child))
    return total


def address(server: Server) -> tuple[str, int]:
    host, port = server.base_url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def exchange(server: Server, data: bytes) -> bytes:
    """Send ``data`` on a new connection and read until the server closes it."""
    received = b""
    with socket.create_connection(address(server), timeout=30) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                received += chunk
    return received


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def head(*lines: bytes) -> bytes:
    return b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + b"".join(lines) + b"Connection: close\r\n\r\n"


@contextmanager
def huge_headers_held_open(server: Server) -> Iterator[list[threading.Thread]]:
    """Four connections, each sending a 64 MB header that never ends, kept open; yields the
    threads sending them (each ends when its 64 MB are sent or the server closes)."""
    sent = [0] * ATTEMPTS
    sockets = [socket.create_connection(address(server), timeout=30) for _ in range(ATTEMPTS)]

    def attempt(number: int) -> None:
        sock = sockets[number]
        # Half of them as fast as they can, half slowly (16 KiB every 5 ms).
        chunk, pause = (b"a" * MIB, 0.0) if number % 2 else (b"a" * 16384, 0.005)
        deadline = time.monotonic() + ATTACK_SECONDS
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Huge: ")
            while sent[number] < ATTEMPT_BYTES and time.monotonic() < deadline:
                sock.sendall(chunk)
                sent[number] += len(chunk)
                if pause:
                    time.sleep(pause)
        except OSError:
            pass  # the server closed the connection: what the limit is for

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(ATTEMPTS)]
    try:
        for thread in threads:
            thread.start()
        yield threads
    finally:
        for thread in threads:
            thread.join(ATTACK_SECONDS + 10)
        for sock in sockets:
            sock.close()


@pytest.mark.parametrize("start", PROCESSES)
def test_four_64_mb_headers_held_open_grow_memory_by_less_than_20_mb(
    tmp_path: Path, e2e_database_url: str, servers: list[Server], start: Start
) -> None:
    server = start(tmp_path, e2e_database_url, QUIET)
    servers.append(server)
    pid = server.process.pid
    # Warm: every code path the attack takes, once, on every worker.
    for _ in range(8):
        assert status(exchange(server, head(b"X-Big: " + b"b" * 20_000 + b"\r\n"))) == 431
        assert status(exchange(server, head())) == 200
    time.sleep(0.5)
    baseline = rss(pid)
    peak = baseline
    with huge_headers_held_open(server) as attempts:
        # Sampled while the attempts are sent and held open: at least 3 s, and until the
        # slow ones end (the server closed them) or could have sent 48 MB of their 64.
        slow = attempts[::2]
        began = time.monotonic()
        while time.monotonic() < began + 3 or (
            any(a.is_alive() for a in slow) and time.monotonic() < began + SLOW_WINDOW
        ):
            peak = max(peak, rss(pid))
            time.sleep(0.02)
        # Cut off, not read to their end: the server stopped reading their heads.
        assert not any(a.is_alive() for a in slow)
    assert peak - baseline < GROWTH_BOUND, (baseline, peak)
    # Unharmed: it answers at once.
    assert httpx2.get(f"{server.base_url}/healthz", timeout=10, trust_env=False).status_code == 200


@pytest.mark.parametrize("start", PROCESSES)
def test_heads_past_the_default_limits_are_answered_431(
    tmp_path: Path, e2e_database_url: str, servers: list[Server], start: Start
) -> None:
    server = start(tmp_path, e2e_database_url, QUIET)
    servers.append(server)
    long_line = b"GET /healthz?" + b"q" * 17_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n"
    long_header = head(b"X-Big: " + b"b" * 17_000 + b"\r\n")
    too_many = head(*(b"X-%d: %s\r\n" % (n, b"m" * 15_000) for n in range(5)))
    within = head(*(b"X-%d: %s\r\n" % (n, b"w" * 15_000) for n in range(4)))

    answers = {
        name: exchange(server, data)
        for name, data in [
            ("request line", long_line),
            ("one header", long_header),
            ("all headers", too_many),
            ("within", within),
        ]
    }

    assert {name: status(answer) for name, answer in answers.items()} == {
        "request line": 431,
        "one header": 431,
        "all headers": 431,
        "within": 200,
    }
    body = answers["one header"].split(b"\r\n\r\n", 1)[1]
    assert body.startswith(b'{"error":"request_header_fields_too_large"')


@pytest.mark.parametrize("start", PROCESSES)
def test_the_limits_are_the_settings_of_every_process(
    tmp_path: Path, e2e_database_url: str, servers: list[Server], start: Start
) -> None:
    env = QUIET | {
        "WFA_MAX_REQUEST_LINE_BYTES": "1024",
        "WFA_MAX_HEADER_BYTES": "2048",
        "WFA_MAX_REQUEST_HEAD_BYTES": "8192",
    }
    server = start(tmp_path, e2e_database_url, env)
    servers.append(server)
    # Several times: with --workers 2, each worker answers some.
    for _ in range(6):
        assert status(exchange(server, head(b"X-Big: " + b"b" * 2100 + b"\r\n"))) == 431
        assert status(exchange(server, head(b"X-Big: " + b"b" * 2000 + b"\r\n"))) == 200
        too_many = head(*(b"X-%d: %s\r\n" % (n, b"m" * 1900) for n in range(5)))
        assert status(exchange(server, too_many)) == 431
        long_line = b"GET /healthz?" + b"q" * 1100 + b" HTTP/1.1\r\nHost: t\r\n\r\n"
        assert status(exchange(server, long_line)) == 431


def test_keep_alive_requests_on_one_connection_are_unaffected(
    tmp_path: Path, e2e_database_url: str, servers: list[Server]
) -> None:
    server = serve(tmp_path, e2e_database_url, QUIET)
    servers.append(server)
    # 100 requests with 12 KiB of headers each, on one connection: 1.2 MB of heads in all.
    headers = {"X-Filler": "f" * 6000, "X-More": "m" * 6000}
    with httpx2.Client(base_url=server.base_url, trust_env=False, timeout=30) as c:
        answers = [c.get("/healthz", headers=headers) for _ in range(100)]
    assert {a.status_code for a in answers} == {200}
    # Pipelined: eight requests sent at once, answered in order.
    answer = exchange(server, head().replace(b"Connection: close\r\n", b"") * 7 + head())
    assert answer.count(b"HTTP/1.1 200 OK") == 8
