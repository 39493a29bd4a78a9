"""``wfa-keys serve`` end to end: a real process, real HTTP, the README's first steps."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import socket
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
from tortoise.context import TortoiseContext

import wfa_keys
from support.serving import WFA_KEYS, Server, free_port, server_env, start_server
from wfa_keys.db import database
from wfa_keys.models import ApiKey

pytestmark = pytest.mark.e2e

EMAIL = "owner@acme.example"
PASSWORD = "a long bootstrap password"
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { email role } }"
CREATE = """mutation { createApiKey(input: {name: "e2e", lifetimeDays: 7}) {
  keySecret apiKey { id status expiresAt } } }"""


def client(server: Server) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(base_url=server.base_url, trust_env=False, timeout=30)


async def graphql(c: httpx2.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await c.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def test_admin_signs_in_creates_a_key_and_calls_the_api_with_it(
    db: TortoiseContext, tmp_path: Path, e2e_database_url: str, servers: list[Server]
) -> None:
    env = {"WFA_BOOTSTRAP_ADMIN_EMAIL": EMAIL, "WFA_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD}
    server = start_server(tmp_path, e2e_database_url, env=env)
    servers.append(server)

    async with client(server) as c:
        signed_in = await graphql(c, LOGIN, e=EMAIL, p=PASSWORD)
        session_id = c.cookies["wfa_session"]
        created = (await graphql(c, CREATE))["createApiKey"]
        key_id, secret = created["apiKey"]["id"], created["keySecret"]
        token_response = await c.post(
            "/api/v1/auth/api-key/token", json={"key_id": key_id, "key_secret": secret}
        )
        token = token_response.json()["access_token"]
        whoami = await c.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
        anonymous = await c.get("/api/v1/whoami")

    assert signed_in["login"] == {"email": EMAIL, "role": "ADMIN"}
    assert created["apiKey"]["status"] == "ACTIVE"
    assert token_response.status_code == 200
    assert whoami.status_code == 200
    assert whoami.json()["key_id"] == key_id
    assert whoami.json()["owner_email"] == EMAIL
    assert anonymous.status_code == 401
    server.stop()
    async with database(e2e_database_url, migrate=False):
        used = await ApiKey.get(key_id=key_id)
    # The API recorded the use of the key in the database.
    assert used.last_used_at is not None
    # uvicorn ends by re-raising SIGTERM, so the status is -15: the log shows the clean end.
    assert "Application shutdown complete." in server.stderr
    # The admin came from the environment: nothing to print but who it is.
    assert f"Created the first admin {EMAIL}" in server.stdout
    assert PASSWORD not in server.stdout
    # Logs at DEBUG: JSON lines, with none of the secrets the run handled.
    logs = server.stderr
    loggers = {json.loads(line)["logger"] for line in logs.splitlines() if line.startswith("{")}
    assert "wfa_keys.request" in loggers
    for value in (PASSWORD, session_id, secret, token, "$argon2"):
        assert value not in logs


async def test_without_bootstrap_variables_a_random_admin_password_is_printed_once(
    db: TortoiseContext, tmp_path: Path, e2e_database_url: str, servers: list[Server]
) -> None:
    first = start_server(tmp_path, e2e_database_url)
    servers.append(first)
    printed = re.search(r"shown only this once: (\S+)", first.stdout)
    assert printed is not None, first.stdout
    password = printed.group(1)

    async with client(first) as c:
        signed_in = await graphql(c, LOGIN, e="admin@localhost", p=password)
    first.stop()
    second = start_server(tmp_path, e2e_database_url)
    servers.append(second)
    second.stop()

    assert signed_in["login"]["email"] == "admin@localhost"
    assert len(password) >= 16
    assert password not in first.stderr
    # Users exist: no new admin, no password; only the address it serves on.
    assert second.stdout == f"Serving on {second.base_url}\n"


async def test_workers_build_the_app_from_the_flags(
    db: TortoiseContext, tmp_path: Path, e2e_database_url: str, servers: list[Server]
) -> None:
    env = {"WFA_BOOTSTRAP_ADMIN_EMAIL": EMAIL, "WFA_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD}
    server = start_server(tmp_path, e2e_database_url, "--workers", "2", "--dev", env=env)
    servers.append(server)

    async with client(server) as c:
        graphiql = await c.get("/graphql", headers={"Accept": "text/html"})
        signed_in = await graphql(c, LOGIN, e=EMAIL, p=PASSWORD)

    # --dev and --database-url reached the worker processes through the environment.
    assert graphiql.status_code == 200
    assert "frame-ancestors 'none'" in graphiql.headers["Content-Security-Policy"]
    assert signed_in["login"]["email"] == EMAIL


def test_serve_on_an_unreachable_database_exits_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(WFA_KEYS),
            "serve",
            "--port",
            str(free_port()),
            "--database-url",
            f"postgres://app:s3cret@127.0.0.1:{free_port()}/keys",
        ],
        capture_output=True,
        text=True,
        env=server_env(),
        cwd=tmp_path,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert result.stderr.startswith("wfa-keys: cannot use the database postgres://app:***@")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("host", "reason"),
    [("127.0.0.1", "Address already in use"), ("no-such-host.invalid", "")],
    ids=["port-in-use", "bad-host"],
)
def test_serve_that_cannot_listen_exits_with_one_line_before_creating_an_admin(
    tmp_path: Path, host: str, reason: str
) -> None:
    database = tmp_path / "keys.sqlite3"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                str(WFA_KEYS),
                "serve",
                "--host",
                host,
                "--port",
                str(port),
                "--database-url",
                f"sqlite://{database}",
            ],
            capture_output=True,
            text=True,
            env=server_env(),
            cwd=tmp_path,
            timeout=60,
            check=False,
        )

    assert result.returncode == 1
    assert result.stderr.startswith(f"wfa-keys: cannot listen on {host}:{port} ({reason}")
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""
    # Nothing was created: not even the database file.
    assert not database.exists()


def test_version_prints_the_package_version() -> None:
    result = subprocess.run(
        [str(WFA_KEYS), "--version"], capture_output=True, text=True, timeout=30, check=False
    )

    assert result.returncode == 0
    assert result.stdout == f"wfa-keys {wfa_keys.__version__}\n"


def test_uvicorn_factory_creates_the_first_admin_and_logs_json(tmp_path: Path) -> None:
    uvicorn = WFA_KEYS.with_name("uvicorn")
    stdout_path, stderr_path = tmp_path / "out", tmp_path / "err"
    env = server_env(WFA_DATABASE_URL=f"sqlite://{tmp_path / 'keys.sqlite3'}")
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [str(uvicorn), "--factory", "wfa_keys.app:create_app", "--port", "0"],
            stdout=out,
            stderr=err,
            env=env,
            cwd=tmp_path,
        )
    try:
        for _ in range(300):
            if "Application startup complete" in stderr_path.read_text() or process.poll():
                break
            time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(timeout=20)

    printed = stdout_path.read_text()
    assert "Created the first admin admin@localhost" in printed
    assert "shown only this once" in printed
    logs = [line for line in stderr_path.read_text().splitlines() if line.strip()]
    assert logs
    assert all(json.loads(line)["level"] for line in logs), logs


async def test_api_calls_through_serve_keep_the_body_limit_the_request_id_and_the_log(
    db: TortoiseContext, tmp_path: Path, e2e_database_url: str, servers: list[Server]
) -> None:
    # The API's own lane in a real process: a body over WFA_MAX_BODY_BYTES is refused with
    # 413 whether it announces its length or comes chunked, every answer carries its request
    # ID and the security headers, and each call is one request log line once serve stops.
    server = start_server(tmp_path, e2e_database_url, env={"WFA_MAX_BODY_BYTES": "2048"})
    servers.append(server)

    async def chunks() -> Any:
        for _ in range(50):
            yield b" " * 100

    token_path = "/api/v1/auth/api-key/token"
    async with client(server) as c:
        sized = await c.post(token_path, content=b" " * 5000)
        chunked = await c.post(token_path, content=chunks())
        unauthenticated = await c.get("/api/v1/whoami")
    server.stop()

    assert "content-length" not in chunked.request.headers
    assert (sized.status_code, chunked.status_code, unauthenticated.status_code) == (413, 413, 401)
    ids = []
    for response in (sized, chunked, unauthenticated):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        ids.append(response.headers["X-Request-ID"])
    lines = [json.loads(line) for line in server.stderr.splitlines() if line.startswith("{")]
    logged = {
        line["request_id"]: (line["route"], line["status"])
        for line in lines
        if line["logger"] == "wfa_keys.request"
    }
    assert [logged[request_id] for request_id in ids] == [
        (token_path, 413),
        (token_path, 413),
        ("/api/v1/whoami", 401),
    ]


async def test_a_stderr_nobody_reads_never_holds_up_the_requests(
    db: TortoiseContext, tmp_path: Path, e2e_database_url: str, servers: list[Server]
) -> None:
    # README: a request only queues its line, so a slow stderr never holds up a request.
    # serve's stderr is a 4 KiB pipe that nobody reads for now: the writing thread waits in
    # its write after a few requests (at DEBUG each one logs two lines, about 450 bytes).
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    try:
        server = start_server(tmp_path, e2e_database_url, stderr_fd=write_end)
        servers.append(server)
        async with client(server) as c:
            started = time.monotonic()
            answers = [await c.get("/api/v1/whoami") for _ in range(200)]
            elapsed = time.monotonic() - started
        assert [a.status_code for a in answers] == [401] * 200
        # Bounded, not a speed figure: a request waiting for the pipe would never return.
        assert elapsed < 60
        # What reached the pipe is at most its 4 KiB: the rest of the 200 lines is queued.
        pending = fcntl.ioctl(read_end, termios.FIONREAD, b"\0\0\0\0")
        assert int.from_bytes(pending, sys.byteorder) <= 4096

        # Once stderr is read again, every queued line arrives, the last request's included.
        os.set_blocking(read_end, False)
        wanted = {a.headers["X-Request-ID"] for a in answers}
        written = b""
        deadline = time.monotonic() + 30
        while wanted - _request_ids(written) and time.monotonic() < deadline:
            try:
                written += os.read(read_end, 65536)
            except BlockingIOError:
                await asyncio.sleep(0.05)
        assert not wanted - _request_ids(written)
    finally:
        # Reading nothing more, the writes fail (and are dropped): serve stops at once.
        os.close(read_end)
        for server in servers:
            server.stop()
        os.close(write_end)


def _request_ids(written: bytes) -> set[str]:
    """The request IDs of the request log lines in ``written`` (whole lines only)."""
    ids = set()
    for line in written.decode("utf-8", "replace").split("\n")[:-1]:
        entry = json.loads(line)
        if entry["logger"] == "wfa_keys.request":
            ids.add(entry["request_id"])
    return ids


def _write_calls(pid: int) -> int:
    """The write system calls process ``pid`` and its child processes (``--workers``) made so
    far, every thread (Linux's proc io)."""
    fields = dict(
        line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines() if line
    )
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(fields["syscw"]) + sum(_write_calls(int(child)) for child in children)


def _writes_for_answers(base_url: str, pid: int, calls: int = 200) -> int:
    """Write system calls server ``pid`` made while answering ``calls`` requests on one
    keep-alive connection, requests whose answers wait for no database (the database's
    thread wakes the event loop with a write of its own)."""
    with httpx2.Client(base_url=base_url, trust_env=False, timeout=30) as c:
        assert c.get("/nowhere").status_code == 404  # the connection is open and warm
        before = _write_calls(pid)
        paths = ["/api/v1/whoami", "/nowhere"] * (calls // 2)
        answers = [c.get(path) for path in paths]
        written = _write_calls(pid) - before
    assert [a.status_code for a in answers] == [401, 404] * (calls // 2)
    return written


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_writes_each_answer_in_one_system_call(
    tmp_path: Path, e2e_database_url: str, servers: list[Server], workers: str
) -> None:
    # README: serve writes each answer in one system call; uvicorn alone writes a response's
    # start and its body in two (wfa_keys.transport joins them). Worker processes too.
    server = start_server(
        tmp_path, e2e_database_url, "--workers", workers, env={"WFA_LOG_LEVEL": "WARNING"}
    )
    servers.append(server)
    written = _writes_for_answers(server.base_url, server.process.pid)
    # Writes of the server's own fall in the while too: on PostgreSQL each process's change
    # feed sends a heartbeat every 0.25 s (two workers, a loaded CI machine: 252 seen). Two
    # writes an answer would be 400.
    assert 200 <= written < 300


@pytest.mark.parametrize("http", ["auto", "wfa_keys.transport:CoalescingHttpProtocol"])
def test_plain_uvicorn_writes_each_answer_once_with_serves_transport(
    tmp_path: Path, http: str
) -> None:
    # README: with plain uvicorn, --http wfa_keys.transport:CoalescingHttpProtocol does the same.
    uvicorn = WFA_KEYS.with_name("uvicorn")
    stderr_path = tmp_path / "err"
    # At INFO, for uvicorn's line with the port; the request log's lines are written in
    # batches, a few writes in all.
    env = server_env(WFA_DATABASE_URL=f"sqlite://{tmp_path / 'keys.sqlite3'}")
    command = [str(uvicorn), "--factory", "wfa_keys.app:create_app", "--port", "0"]
    with stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [*command, "--http", http],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            cwd=tmp_path,
        )
    try:
        running = None
        for _ in range(300):
            running = re.search(r"Uvicorn running on (http://[\d.]+:\d+)", stderr_path.read_text())
            if running or process.poll() is not None:
                break
            time.sleep(0.05)
        assert running, stderr_path.read_text()
        written = _writes_for_answers(running.group(1), process.pid)
    finally:
        process.terminate()
        process.wait(timeout=20)
    if http == "auto":
        assert written >= 400  # uvicorn's own: two a response
    else:
        assert 200 <= written < 250
