"""Throughput of a trivial route behind ApiKeyAuthMiddleware, as a ratio of the bare route.

Starts two real uvicorn servers on 127.0.0.1 (the bare app and the same app behind the
middleware with the memory store) and drives them with wrk, interleaving five cases for
``--rounds`` rounds of ``--seconds`` seconds each: the bare route with no header, the bare
route with the Bearer and with the Basic header (which it ignores), and the protected route
with the same two headers (warm token, warm credentials). It prints the median throughput of
each and the ratios (the median of the per-round ratios): protected over bare for the same
requests, which is the cost of the middleware, and protected over the header-less bare route.
Beside each throughput ratio it prints the ratio of the servers' CPU time per request (all
their threads, from /proc, over the requests wrk completed): the same comparison by another
measure, which leaves out the time a server waited for its CPU (not the time a CPU shared
with other tenants ran slower).
With taskset and two CPUs, the servers run on CPU 0 and wrk on CPU 1.

    .venv/bin/python bench/run.py            # 3 rounds x 5 s per case, about 90 s in all

With ``--stack`` it measures the whole service instead: a warm Bearer call to
``/api/v1/whoami`` through a real ``wfa-keys serve`` process (the real ``create_app`` run by
uvicorn as ``serve`` runs it, on a SQLite file, request log on at INFO into a file), a 404
through the same process, the middleware-only app, the bare app sending the very bytes
``whoami`` answered (its JSON, its security headers and request ID), and the bare route on
the transport ``serve`` gives uvicorn (``--http wfa_keys.transport:CoalescingHttpProtocol``:
one write per response where uvicorn makes two), each against the bare route with the same
requests, interleaved in the same rounds. Then the whole service against that same-bytes
route, which leaves out what the server spends writing the answer, and against the bare
route on serve's transport, which leaves out what that transport saves (the service's own
work, alone):

    .venv/bin/python bench/run.py --stack    # 3 rounds x 5 s per case, about 2 minutes

Installs wrk with apt-get when it is missing (the Debian package).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, NamedTuple

import httpx2

from wfa_auth import generate_key_id, generate_key_secret

HERE = Path(__file__).resolve().parent
STARTUP_TIMEOUT = 20.0
# On a machine with two or more CPUs, the servers run on one and wrk on another, so that the
# load generator does not steal the server's time (both servers share one CPU: they never
# run load at the same time).
SERVER_CPU, LOAD_CPU = 0, 1
# The transport wfa-keys serve runs uvicorn's HTTP protocol on (one write per response).
ONE_WRITE = "wfa_keys.transport:CoalescingHttpProtocol"


def pin(cpu: int) -> list[str]:
    taskset = shutil.which("taskset")
    if taskset is None or (os.cpu_count() or 1) < 2:
        return []
    return [taskset, "-c", str(cpu)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_tool(name: str) -> str:
    """The path of the command ``name``, installed from Debian's package of that name when
    missing (wrk here, valgrind for ``bench/instructions.py``)."""
    found = shutil.which(name)
    if found:
        return found
    print(f"{name} is missing: installing the Debian package", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", name], check=True, timeout=600)
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"{name} could not be installed")
    return found


class Server(NamedTuple):
    url: str
    pid: int


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system, every thread) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Run(NamedTuple):
    """One wrk run: requests per second, and the server's CPU seconds per request."""

    rate: float
    cpu_per_request: float


@contextmanager
def server(
    mode: str, env: dict[str, str], wrapper: Sequence[str] = (), http: str = "auto"
) -> Iterator[Server]:
    """The bench app in ``mode`` under uvicorn (run by ``wrapper``, valgrind say, if given),
    with ``http`` as uvicorn's ``--http`` option."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench_app:create",
        "--factory",
        "--app-dir",
        str(HERE),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        "--http",
        http,
    ]
    env = {**os.environ, **env, "WFA_BENCH_MODE": mode}
    with running(mode, port, [*wrapper, *command], env) as started:
        yield started


@contextmanager
def serve(
    database_url: str,
    log_path: Path,
    wrapper: Sequence[str] = (),
    settings: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """``wfa-keys serve`` as users run it, logging its JSON lines (INFO) to ``log_path``;
    with a ``wrapper`` (valgrind), ``python -m wfa_keys serve``, the same command.
    ``settings``: more ``WFA_*`` variables (``WFA_THROTTLE_STORE``, say)."""
    port = free_port()
    if wrapper:  # the wrapper runs the interpreter itself, not the script's shebang
        command = [*wrapper, sys.executable, "-m", "wfa_keys"]
    else:
        command = [str(Path(sys.executable).with_name("wfa-keys"))]
    command += ["serve", "--host", "127.0.0.1", "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFA_")}
    env |= {"WFA_DATABASE_URL": database_url, "WFA_LOG_LEVEL": "INFO", **(settings or {})}
    with log_path.open("wb") as log, running("serve", port, command, env, stderr=log) as served:
        yield served


@contextmanager
def running(
    mode: str, port: int, command: list[str], env: dict[str, str], stderr: IO[bytes] | None = None
) -> Iterator[Server]:
    """``command`` started on the server CPU, until it accepts connections on ``port``."""
    process = subprocess.Popen(
        [*pin(SERVER_CPU), *command], env=env, stdout=subprocess.DEVNULL, stderr=stderr
    )
    url = f"http://127.0.0.1:{port}"
    # Under valgrind, starting takes some fifty times as long.
    timeout = STARTUP_TIMEOUT if Path(command[0]).name != "valgrind" else 20 * STARTUP_TIMEOUT
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit(f"the {mode} server did not start") from None
                time.sleep(0.1)
        # taskset execs the command: the process is the server itself.
        yield Server(url, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def get_token(url: str, key_id: str, secret: str) -> str:
    body = {"key_id": key_id, "key_secret": secret}
    response = httpx2.post(url + "/v1/auth/api-key/token", json=body, timeout=10)
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def wrk(
    binary: str,
    target: Server,
    path: str,
    seconds: int,
    connections: int,
    headers: dict[str, str],
    expect_errors: bool = False,
    script: Sequence[str] = (),
) -> Run:
    """One wrk run; ``script``, if given, is a Lua script and its arguments (``wrk -s``)."""
    command = [*pin(LOAD_CPU), binary, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script:
        command += ["-s", script[0]]
    cpu_before = cpu_seconds(target.pid)
    result = subprocess.run(
        [*command, target.url + path, *(["--", *script[1:]] if script else [])],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    )
    cpu_used = cpu_seconds(target.pid) - cpu_before
    if not expect_errors and "Non-2xx" in result.stdout:
        raise SystemExit(f"wrk saw failed requests:\n{result.stdout}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    completed = re.search(r"(\d+) requests in", result.stdout)
    if rate is None or completed is None:
        raise SystemExit(f"cannot read wrk's output:\n{result.stdout}")
    return Run(float(rate.group(1)), cpu_used / max(int(completed.group(1)), 1))


async def create_key(database_url: str) -> tuple[str, str]:
    """A user, its organization (subscribed) and one key, written straight to the database."""
    from wfa_keys.crypto import hasher_for
    from wfa_keys.db import database
    from wfa_keys.models import ApiKey, Role
    from wfa_keys.settings import Settings
    from wfa_keys.users import create_user

    settings = Settings(database_url=database_url)
    key_id, secret = generate_key_id(), generate_key_secret()
    async with database(database_url):
        user = await create_user(
            settings,
            email="bench@acme.example",
            password="a bench password",
            organization="Bench",
            role=Role.ADMIN,
        )
        await ApiKey.create(
            key_id=key_id,
            name="bench",
            secret_hash=hasher_for(settings).hash(secret),
            owner=user,
            organization_id=user.organization_id,
        )
    return key_id, secret


Case = tuple[Server, str, dict[str, str]]


def run_rounds(
    binary: str,
    cases: dict[str, Case],
    args: argparse.Namespace,
    expect_errors: frozenset[str] = frozenset(),
) -> dict[str, list[Run]]:
    """Each case for ``args.seconds`` per round, the cases interleaved within each round."""
    for name, (target, path, headers) in cases.items():  # warm up: caches, connections, argon2
        wrk(binary, target, path, 1, args.connections, headers, name in expect_errors)
    results: dict[str, list[Run]] = {name: [] for name in cases}
    for round_number in range(1, args.rounds + 1):
        for name, (target, path, headers) in cases.items():
            run = wrk(
                binary, target, path, args.seconds, args.connections, headers, name in expect_errors
            )
            results[name].append(run)
            print(
                f"round {round_number} {name:>11}: {run.rate:10.0f} req/s, "
                f"{run.cpu_per_request * 1e6:6.1f} us of server CPU a request",
                flush=True,
            )
    print()
    for name, runs in results.items():
        print(
            f"median {name:>11}: {statistics.median(r.rate for r in runs):10.0f} req/s, "
            f"{statistics.median(r.cpu_per_request for r in runs) * 1e6:6.1f} us a request"
        )
    return results


def print_ratio(results: dict[str, list[Run]], name: str, baseline: str, label: str) -> None:
    # Ratios within a round compare runs made seconds apart, under the same background load.
    pairs = list(zip(results[name], results[baseline], strict=True))
    per_round = [run.rate / base.rate for run, base in pairs]
    cpu = statistics.median(base.cpu_per_request / run.cpu_per_request for run, base in pairs)
    medians = statistics.median(r.rate for r in results[name]) / statistics.median(
        r.rate for r in results[baseline]
    )
    print(
        f"ratio {label}: {statistics.median(per_round):.3f} (median of rounds; "
        f"medians: {medians:.3f}; rounds: {' '.join(f'{r:.3f}' for r in per_round)}; "
        f"CPU a request: {cpu:.3f})"
    )


def stack(binary: str, args: argparse.Namespace) -> None:
    """The whole ``wfa-keys serve`` app against the bare route, same requests, same rounds."""
    with tempfile.TemporaryDirectory(prefix="wfa-bench-") as tmp:
        database_url = f"sqlite://{Path(tmp) / 'bench.sqlite3'}"
        key_id, secret = asyncio.run(create_key(database_url))
        env = {"WFA_BENCH_KEY_ID": key_id, "WFA_BENCH_KEY_SECRET": secret}
        log_path = Path(tmp) / "serve.log"
        with serve(database_url, log_path) as service:
            token = get_token(service.url + "/api", key_id, secret)
            bearer = {"Authorization": f"Bearer {token}"}
            # What the service answers, for a bare route to send byte for byte: its JSON and
            # its headers (the security headers, the request ID); the server adds the rest.
            answer = httpx2.get(service.url + "/api/v1/whoami", headers=bearer, timeout=10)
            answer.raise_for_status()
            skipped = {"content-length", "date", "server"}
            headers = [[n, v] for n, v in answer.headers.items() if n not in skipped]
            env["WFA_BENCH_SAME_BYTES"] = json.dumps({"body": answer.text, "headers": headers})
            with (
                server("none", env) as bare,
                server("auth", env) as protected,
                server("none", env, http=ONE_WRITE) as bare_one_write,
            ):
                middleware_token = get_token(protected.url, key_id, secret)
                middleware_bearer = {"Authorization": f"Bearer {middleware_token}"}
                cases: dict[str, Case] = {
                    "bare+bearer": (bare, "/ping", bearer),
                    "stack": (service, "/api/v1/whoami", bearer),
                    "stack 404": (service, "/nowhere", bearer),
                    "middleware": (protected, "/ping", middleware_bearer),
                    "same bytes": (bare, "/same-bytes", bearer),
                    "one write": (bare_one_write, "/ping", bearer),
                }
                results = run_rounds(binary, cases, args, expect_errors=frozenset({"stack 404"}))
        logged = sum(1 for _ in log_path.open(encoding="utf-8"))
    for name, baseline, label in (
        ("stack", "bare+bearer", "warm Bearer, wfa-keys serve / bare route          "),
        ("stack 404", "bare+bearer", "404, wfa-keys serve / bare route                  "),
        ("middleware", "bare+bearer", "warm Bearer, middleware only / bare route         "),
        ("same bytes", "bare+bearer", "bare route sending whoami's bytes / bare route    "),
        ("stack", "same bytes", "warm Bearer, wfa-keys serve / bare, same bytes     "),
        ("one write", "bare+bearer", "bare route on serve's transport / bare route      "),
        ("stack", "one write", "warm Bearer, wfa-keys serve / bare, same transport"),
    ):
        print_ratio(results, name, baseline, label)
    print(f"wfa-keys serve wrote {logged} log lines (the request log was on)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--stack", action="store_true", help="the whole wfa-keys serve app, not the middleware"
    )
    args = parser.parse_args()
    binary = ensure_tool("wrk")
    if args.stack:
        stack(binary, args)
        return
    key_id, secret = generate_key_id(), generate_key_secret()
    env = {"WFA_BENCH_KEY_ID": key_id, "WFA_BENCH_KEY_SECRET": secret}
    basic = "Basic " + base64.b64encode(f"{key_id}:{secret}".encode()).decode()
    with server("none", env) as bare, server("auth", env) as protected:
        token = get_token(protected.url, key_id, secret)
        bearer = {"Authorization": f"Bearer {token}"}
        # The bare route gets the very same requests, headers included (it ignores them):
        # the ratio then measures the middleware, not the parsing of a longer request.
        cases: dict[str, Case] = {
            "none": (bare, "/ping", {}),
            "bare+bearer": (bare, "/ping", bearer),
            "bearer": (protected, "/ping", bearer),
            "bare+basic": (bare, "/ping", {"Authorization": basic}),
            "basic": (protected, "/ping", {"Authorization": basic}),
        }
        results = run_rounds(binary, cases, args)
    for name, baseline, label in (
        ("bearer", "bare+bearer", "warm Bearer / no middleware (same requests)       "),
        ("basic", "bare+basic", "warm Basic  / no middleware (same requests)       "),
        ("bearer", "none", "warm Bearer / no middleware, no header            "),
        ("basic", "none", "warm Basic  / no middleware, no header            "),
    ):
        print_ratio(results, name, baseline, label)


if __name__ == "__main__":
    main()
