"""Instructions a warm call costs, in-process, counted by callgrind: the same on a busy machine.

Throughput on a shared machine swings by a third from one round to the next (see
``bench/run.py``); an instruction count does not. This drives each app in-process, with no
server and no socket (what is left out is the same for all of them: uvicorn and the
kernel), under ``valgrind --tool=callgrind``, twice: 500 and 2,500 calls after 300 to warm
up. The difference over 2,000 is one call's instructions, startup left out. Cases:

- the bare route (``bench_app``, ``/ping``, with a Bearer header it ignores);
- the same route behind ``ApiKeyAuthMiddleware``, with a warm Bearer token and with Basic;
- the whole service: ``/api/v1/whoami`` through ``create_app`` (SQLite file, request log on
  at INFO into a file, every line written before the count ends), warm Bearer token.

It prints each count and the bare route's count over it, the in-process counterpart of the
throughput ratios (which also pay uvicorn and the kernel, the same for every case)::

    .venv/bin/python bench/instructions.py      # about 3 minutes; needs valgrind

With ``--http`` it counts the same three servers ``bench/run.py --stack`` drives, each a real
uvicorn process under callgrind on 127.0.0.1 (the bare route and the middleware-only app of
``bench_app``, and ``wfa-keys serve`` on a SQLite file with the request log on at INFO into a
file), called over one keep-alive connection: after 300 calls to warm up, the counters are
zeroed and dumped around ``--calls`` warm calls (``callgrind_control``). What the server's
process did meanwhile without a call (uvicorn's tick, the log thread's wake-ups, the change
feed's poll: they run by the clock, and under valgrind the clock runs fifty times as long a
call) is counted over an idle while just before and taken off at that rate. What is left is
a call's instructions in user space, uvicorn's included; the kernel's are not counted::

    .venv/bin/python bench/instructions.py --http    # about 5 minutes

Installs valgrind with apt-get when it is missing (the Debian package).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import importlib
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CASES = ("bare", "bearer", "basic", "service")
WARM_UP, FEW, MANY = 300, 500, 2500

Headers = list[tuple[bytes, bytes]]


def scope_for(path: str, headers: Headers) -> dict[str, Any]:
    """An HTTP GET scope as uvicorn builds it for ``path`` from a client on this host."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), *headers],
        "state": {},
    }


async def calls(app: Any, path: str, headers: Headers, count: int) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    for _ in range(WARM_UP + count):
        await app(scope_for(path, headers), receive, send)


async def token_of(app: Any, path: str, key_id: str, secret: str) -> str:
    import httpx2

    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://bench") as client:
        body = {"key_id": key_id, "key_secret": secret}
        response = await client.post(path, json=body)
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token


async def drive_bench_app(case: str, count: int) -> None:
    """The bare route or the middleware (bench_app), ``count`` warm calls."""
    from wfa_auth import generate_key_id, generate_key_secret

    key_id, secret = generate_key_id(), generate_key_secret()
    os.environ |= {
        "WFA_BENCH_KEY_ID": key_id,
        "WFA_BENCH_KEY_SECRET": secret,
        "WFA_BENCH_MODE": "none" if case == "bare" else "auth",
    }
    # Imported by name: this folder is put on the path by drive(), not known to mypy.
    app = importlib.import_module("bench_app").create()
    if case == "basic":
        basic = base64.b64encode(f"{key_id}:{secret}".encode())
        headers = [(b"authorization", b"Basic " + basic)]
    elif case == "bearer":
        token = await token_of(app, "/v1/auth/api-key/token", key_id, secret)
        headers = [(b"authorization", f"Bearer {token}".encode())]
    else:  # the bare route gets a Bearer header of a token's length, which it ignores
        headers = [(b"authorization", b"Bearer " + b"t" * 43)]
    await calls(app, "/ping", headers, count)


async def drive_service(count: int) -> None:
    """``/api/v1/whoami`` through the whole app, its lifespan run, ``count`` warm calls."""
    from wfa_keys.app import create_app
    from wfa_keys.logs import JsonLinesHandler, configure_logging
    from wfa_keys.settings import Settings

    with tempfile.TemporaryDirectory(prefix="wfa-instructions-") as tmp:
        database_url = f"sqlite://{Path(tmp) / 'bench.sqlite3'}"
        key_id, secret = await importlib.import_module("run").create_key(database_url)
        configure_logging("INFO")
        (handler,) = logging.getLogger().handlers
        assert isinstance(handler, JsonLinesHandler)
        with (Path(tmp) / "serve.log").open("w") as log:
            handler.setStream(log)
            app = create_app(Settings(database_url=database_url))
            startup: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
            started: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
            await startup.put({"type": "lifespan.startup"})
            lifespan = asyncio.create_task(
                app({"type": "lifespan", "asgi": {"version": "3.0"}}, startup.get, started.put)
            )
            assert (await started.get())["type"] == "lifespan.startup.complete"
            token = await token_of(app, "/api/v1/auth/api-key/token", key_id, secret)
            await calls(
                app, "/api/v1/whoami", [(b"authorization", f"Bearer {token}".encode())], count
            )
            handler.flush()  # every line formatted and written within the count
            await startup.put({"type": "lifespan.shutdown"})
            await lifespan
            handler.setStream(sys.stderr)


def this_folder_last() -> None:
    """Put this folder at the end of the path: it holds graphql.py, which would hide the
    graphql package from strawberry."""
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]


def drive(case: str, count: int) -> None:
    this_folder_last()
    if case == "service":
        asyncio.run(drive_service(count))
    else:
        asyncio.run(drive_bench_app(case, count))


def instructions(valgrind: str, case: str, count: int, tmp: Path) -> int:
    out = tmp / f"callgrind.{case}.{count}"
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    command = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}"]
    command += [sys.executable, __file__, "--drive", case, str(count)]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=1200)
    found = re.search(r"^summary:\s+(\d+)", out.read_text(), re.MULTILINE)
    if found is None:
        raise SystemExit(f"no summary in {out}")
    return int(found.group(1))


IDLE_SECONDS = 5.0


def callgrind_total(pid: int, command: str, out: Path) -> int:
    """Run ``callgrind_control`` ``command`` (``--zero``, ``--dump``) on ``pid``; for a dump, the
    instructions counted since the last zero (callgrind writes each dump to a file of its own)."""
    before = set(out.parent.glob(out.name + ".*"))
    subprocess.run(["callgrind_control", command, str(pid)], check=True, capture_output=True)
    if command != "--dump":
        return 0
    deadline = time.monotonic() + 120
    while True:
        for path in set(out.parent.glob(out.name + ".*")) - before:
            found = re.search(r"^summary:\s+(\d+)", path.read_text(), re.MULTILINE)
            if found is not None:
                return int(found.group(1))
        if time.monotonic() > deadline:
            raise SystemExit(f"callgrind wrote no dump for {out}")
        time.sleep(0.2)


def http_calls(url: str, path: str, headers: dict[str, str], count: int) -> float:
    """``count`` GETs over one keep-alive connection, each answered 200; the seconds taken."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=120)
    started = time.monotonic()
    try:
        for _ in range(count):
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"{path} answered {response.status}")
    finally:
        connection.close()
    return time.monotonic() - started


def http_count(server: Any, out: Path, path: str, headers: dict[str, str], calls: int) -> float:
    """One warm call's instructions in the server under callgrind, idle work taken off."""
    http_calls(server.url, path, headers, WARM_UP)
    callgrind_total(server.pid, "--zero", out)
    idle_started = time.monotonic()
    time.sleep(IDLE_SECONDS)
    idle = callgrind_total(server.pid, "--dump", out)
    idle_rate = idle / (time.monotonic() - idle_started)
    callgrind_total(server.pid, "--zero", out)
    zeroed = time.monotonic()
    http_calls(server.url, path, headers, calls)
    busy = callgrind_total(server.pid, "--dump", out)
    seconds = time.monotonic() - zeroed
    per_call = (busy - idle_rate * seconds) / calls
    print(
        f"  {busy:,} instructions in {seconds:.1f} s for {calls} calls; idle "
        f"{idle_rate:,.0f} a second ({idle_rate * seconds / busy:.1%} of them taken off)",
        flush=True,
    )
    return per_call


def main_http(valgrind: str, calls: int) -> None:
    run = importlib.import_module("run")

    per_call: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="wfa-callgrind-http-") as tmp:
        folder = Path(tmp)

        def wrapper(case: str) -> list[str]:
            out = folder / f"http.{case}"
            log = f"--log-file={folder / f'valgrind.{case}.log'}"
            return [valgrind, "--tool=callgrind", log, f"--callgrind-out-file={out}"]

        database_url = f"sqlite://{folder / 'bench.sqlite3'}"
        key_id, secret = asyncio.run(run.create_key(database_url))
        env = {"WFA_BENCH_KEY_ID": key_id, "WFA_BENCH_KEY_SECRET": secret}
        with run.server("none", env, wrapper("bare")) as bare:
            # The bare route gets a Bearer header of a token's length, which it ignores.
            headers = {"Authorization": "Bearer " + "t" * 43}
            per_call["bare"] = http_count(bare, folder / "http.bare", "/ping", headers, calls)
        print(f"{'bare':>8}: {per_call['bare']:9,.0f} instructions a call", flush=True)
        with run.server("auth", env, wrapper("middleware")) as protected:
            token = run.get_token(protected.url, key_id, secret)
            headers = {"Authorization": f"Bearer {token}"}
            per_call["bearer"] = http_count(
                protected, folder / "http.middleware", "/ping", headers, calls
            )
            print(f"{'bearer':>8}: {per_call['bearer']:9,.0f} instructions a call", flush=True)
            basic = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
            headers = {"Authorization": f"Basic {basic}"}
            per_call["basic"] = http_count(
                protected, folder / "http.middleware", "/ping", headers, calls
            )
        print(f"{'basic':>8}: {per_call['basic']:9,.0f} instructions a call", flush=True)
        with run.serve(database_url, folder / "serve.log", wrapper("service")) as service:
            token = run.get_token(service.url + "/api", key_id, secret)
            headers = {"Authorization": f"Bearer {token}"}
            per_call["service"] = http_count(
                service, folder / "http.service", "/api/v1/whoami", headers, calls
            )
        print(f"{'service':>8}: {per_call['service']:9,.0f} instructions a call", flush=True)
        logged = sum(1 for _ in (folder / "serve.log").open(encoding="utf-8"))
    print()
    for case in ("bearer", "basic", "service"):
        print(f"bare route / {case:<8}: {per_call['bare'] / per_call[case]:.3f} (over HTTP)")
    print(f"wfa-keys serve wrote {logged} log lines (the request log was on)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drive", nargs=2, metavar=("CASE", "COUNT"), help=argparse.SUPPRESS)
    parser.add_argument("--http", action="store_true", help="count real uvicorn servers")
    parser.add_argument("--calls", type=int, default=2000, help="warm calls counted (--http)")
    args = parser.parse_args()
    if args.drive:
        drive(args.drive[0], int(args.drive[1]))
        return
    valgrind: str = importlib.import_module("run").ensure_tool("valgrind")
    if args.http:
        this_folder_last()
        main_http(valgrind, args.calls)
        return
    per_call: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="wfa-callgrind-") as tmp:
        for case in CASES:
            few, many = (instructions(valgrind, case, n, Path(tmp)) for n in (FEW, MANY))
            per_call[case] = (many - few) / (MANY - FEW)
            print(f"{case:>8}: {per_call[case]:9,.0f} instructions a call", flush=True)
    print()
    for case in CASES[1:]:
        print(f"bare route / {case:<8}: {per_call['bare'] / per_call[case]:.3f}")


if __name__ == "__main__":
    main()
