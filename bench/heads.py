"""What counting request heads costs: keep-alive pipelined requests, with and without it.

Starts two real uvicorn processes serving ``bench_app`` bare (``WFA_BENCH_MODE=none``): one
with the protocol ``wfa-keys serve`` uses (``wfa_keys.transport:CoalescingHttpProtocol``,
which counts each head against ``WFA_MAX_*``), one with the same protocol with the counting
left out (:class:`UncountedHttpProtocol`, defined here). On one keep-alive connection to each,
it sends batches of pipelined requests and reads every answer, interleaving the two servers
for ``--rounds`` rounds of ``--seconds`` seconds per case. Two cases: small heads (about
60 bytes, one read holds many) and large ones (12 KiB of headers each, where the count looks
at every line). It checks every answer is a 200, and prints requests per second and the
servers' CPU time per request (from /proc), and the ratios counted / uncounted (medians of
the per-round ratios).

    .venv/bin/python bench/heads.py          # 3 rounds x 3 s per case, about 40 s
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from wfa_keys.transport import CoalescingHttpProtocol

BENCH = Path(__file__).parent
BATCH = 50  # requests pipelined per write
STARTUP_TIMEOUT = 30.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class UncountedHttpProtocol(CoalescingHttpProtocol):
    """The service's protocol without the head count (for this comparison only)."""

    def data_received(self, data: bytes) -> None:
        HttpToolsProtocol.data_received(self, data)


CASES = {
    "small heads": b"GET /ping HTTP/1.1\r\nHost: bench\r\nAccept: */*\r\n\r\n",
    "12 KiB heads": b"GET /ping HTTP/1.1\r\nHost: bench\r\n"
    + b"".join(b"X-Filler-%d: %s\r\n" % (n, b"f" * 3000) for n in range(4))
    + b"\r\n",
}
PROTOCOLS = {
    "counted": "wfa_keys.transport:CoalescingHttpProtocol",
    "uncounted": "heads:UncountedHttpProtocol",
}


def start(protocol: str) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "uvicorn", "--factory", "bench_app:create"]
    command += ["--port", str(port), "--http", protocol, "--log-level", "warning"]
    env = {**os.environ, "WFA_BENCH_MODE": "none", "PYTHONPATH": str(BENCH)}
    process = subprocess.Popen(command, cwd=BENCH, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"uvicorn with {protocol} did not start")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def drive(port: int, request: bytes, seconds: float) -> int:
    """Requests answered in ``seconds`` on one keep-alive connection, ``BATCH`` at a time."""
    answered = 0
    batch = request * BATCH
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            sock.sendall(batch)
            received = b""
            while received.count(b"HTTP/1.1 ") < BATCH:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise SystemExit("the server closed the connection")
                received += chunk
            if received.count(b"HTTP/1.1 200 OK") != BATCH:
                raise SystemExit(f"not every answer was a 200: {received[:200]!r}")
            answered += BATCH
    return answered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    servers = {name: start(protocol) for name, protocol in PROTOCOLS.items()}
    try:
        rates: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            for case, request in CASES.items():
                for name, (process, port) in servers.items():
                    before = cpu_seconds(process.pid)
                    answered = drive(port, request, args.seconds)
                    used = cpu_seconds(process.pid) - before
                    rates.setdefault((case, name), []).append(answered / args.seconds)
                    cpu.setdefault((case, name), []).append(used / answered * 1e6)
        for case in CASES:
            for name in PROTOCOLS:
                print(
                    f"{case:>13} {name:>9}: {statistics.median(rates[case, name]):9.0f} req/s, "
                    f"{statistics.median(cpu[case, name]):6.1f} us CPU/request"
                )
            rate_ratio = statistics.median(
                c / u for c, u in zip(rates[case, "counted"], rates[case, "uncounted"], strict=True)
            )
            cpu_ratio = statistics.median(
                c / u for c, u in zip(cpu[case, "counted"], cpu[case, "uncounted"], strict=True)
            )
            print(
                f"{case:>13} ratio counted/uncounted: throughput {rate_ratio:.3f}, "
                f"CPU per request {cpu_ratio:.3f}"
            )
    finally:
        for process, _port in servers.values():
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
