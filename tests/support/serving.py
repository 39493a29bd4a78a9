"""Start and stop real ``wfa-keys serve`` processes on 127.0.0.1.

Each server binds port 0 and the test reads the port it got from its "Serving on" line,
so that no other process can take the port between choosing and binding it.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

WFA_KEYS = Path(sys.executable).with_name("wfa-keys")
START_ATTEMPTS = 300  # x 0.1 s: a server that is not up by then has failed to start
STOP_TIMEOUT = 20


SERVING_ON = re.compile(r"^Serving on (http://\S+)$", re.MULTILINE)


def free_port() -> int:
    """A port nothing listens on right now (for tests that need a port in use or unused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Server:
    """A running ``wfa-keys serve``; its stdout and stderr go to files."""

    process: subprocess.Popen[bytes]
    base_url: str
    stdout_path: Path
    stderr_path: Path

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8")

    def stop(self) -> int:
        """Stop the server (SIGTERM, then SIGKILL) and return its exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        return self.process.returncode


def server_env(**variables: str) -> dict[str, str]:
    """The environment without any outside ``WFA_*`` variable, plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFA_")}
    env.update(variables)
    return env


def start_server(
    workdir: Path,
    database_url: str,
    *args: str,
    env: dict[str, str] | None = None,
    stderr_fd: int | None = None,
) -> Server:
    """Start ``wfa-keys serve`` and wait until ``/healthz`` answers 200.

    ``stderr_fd``, when given, is the server's stderr instead of a file (a pipe, say).
    """
    run = len(list(workdir.glob("stdout-*"))) + 1
    stdout_path, stderr_path = workdir / f"stdout-{run}", workdir / f"stderr-{run}"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr_file:
        process = subprocess.Popen(
            [
                str(WFA_KEYS),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--database-url",
                database_url,
                *args,
            ],
            stdout=stdout,
            stderr=stderr_file if stderr_fd is None else stderr_fd,
            stdin=subprocess.DEVNULL,
            env=server_env(WFA_LOG_LEVEL="DEBUG") | (env or {}),
            cwd=workdir,
        )
    server = Server(process, "", stdout_path, stderr_path)
    for _ in range(START_ATTEMPTS):
        if process.poll() is not None:
            pytest.fail(f"wfa-keys serve exited with {process.returncode}: {server.stderr}")
        if not server.base_url:
            match = SERVING_ON.search(server.stdout)
            if match is None:
                time.sleep(0.05)
                continue
            server.base_url = match.group(1)
        try:
            if (
                httpx2.get(f"{server.base_url}/healthz", timeout=1, trust_env=False).status_code
                == 200
            ):
                return server
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    pytest.fail(f"wfa-keys serve did not answer /healthz: {server.stderr}")


UVICORN_RUNNING = re.compile(r"Uvicorn running on (http://[\d.]+:\d+)")


def start_uvicorn(workdir: Path, database_url: str, *args: str, env: dict[str, str]) -> Server:
    """Start the documented plain-uvicorn command (``uvicorn --factory
    wfa_keys.app:create_app``, plus ``args``) and wait until ``/healthz`` answers 200.

    At log level INFO whatever ``env`` says: uvicorn's line with the port is an INFO one."""
    uvicorn = WFA_KEYS.with_name("uvicorn")
    run = len(list(workdir.glob("stdout-*"))) + 1
    stdout_path, stderr_path = workdir / f"stdout-{run}", workdir / f"stderr-{run}"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr_file:
        process = subprocess.Popen(
            [str(uvicorn), "--factory", "wfa_keys.app:create_app", "--port", "0", *args],
            stdout=stdout,
            stderr=stderr_file,
            stdin=subprocess.DEVNULL,
            env=server_env(WFA_DATABASE_URL=database_url) | env | {"WFA_LOG_LEVEL": "INFO"},
            cwd=workdir,
        )
    server = Server(process, "", stdout_path, stderr_path)
    for _ in range(START_ATTEMPTS):
        if process.poll() is not None:
            pytest.fail(f"uvicorn exited with {process.returncode}: {server.stderr}")
        match = UVICORN_RUNNING.search(server.stderr)
        if match is not None:
            server.base_url = match.group(1)
            try:
                health = httpx2.get(f"{server.base_url}/healthz", timeout=1, trust_env=False)
                if health.status_code == 200:
                    return server
            except httpx2.TransportError:
                pass
        time.sleep(0.1)
    server.stop()
    pytest.fail(f"uvicorn did not answer /healthz: {server.stderr}")
