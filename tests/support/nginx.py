"""Run Debian's nginx as a child of the test, with a self-signed certificate made by openssl.

nginx runs in the foreground (``daemon off``) with one process (``master_process off``, so
that it stays the test's user and reads the test's files), with its prefix, pid file, logs
and temporary folders under the test's own directory, listening on 127.0.0.1 only. It
includes a ``server`` block given by the test: the documented one, with its port, its
certificate and its upstream replaced.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.serving import free_port

__all__ = ["Nginx", "TlsFiles", "nginx_or_fail", "run_nginx", "self_signed_certificate"]

START_TIMEOUT = 30.0


def nginx_or_fail() -> str:
    """The nginx binary; missing, the test fails in CI (``.ci/run`` installs it) and skips
    elsewhere."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found:
        return found
    message = "the nginx test needs Debian's nginx (apt-get install nginx)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(f"{message}; CI fails here instead of skipping")


@dataclass(frozen=True)
class TlsFiles:
    """A certificate (for 127.0.0.1) and its key, and a client context trusting it."""

    certificate: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.certificate))


def self_signed_certificate(directory: Path) -> TlsFiles:
    """A one-day self-signed certificate for 127.0.0.1, made with ``openssl``."""
    files = TlsFiles(directory / "cert.pem", directory / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(files.key), "-out", str(files.certificate)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return files


@dataclass
class Nginx:
    """A running nginx: its HTTPS port and its error log."""

    port: int
    error_log: Path

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


def _main_config(prefix: Path, server_block: Path) -> str:
    temp = {name: prefix / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for folder in temp.values():
        folder.mkdir()
    return f"""
daemon off;
master_process off;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {temp["client_body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    include {server_block};
}}
"""


@contextmanager
def run_nginx(prefix: Path, server_block: str) -> Iterator[Nginx]:
    """Run nginx with ``server_block``, in which ``{port}`` is replaced by a free port."""
    binary = nginx_or_fail()
    prefix.mkdir(parents=True, exist_ok=True)
    config = prefix / "nginx.conf"
    block = prefix / "server.conf"
    config.write_text(_main_config(prefix, block), encoding="utf-8")
    for _attempt in range(3):  # another process may take the free port before nginx binds it
        port = free_port()
        block.write_text(server_block.replace("{port}", str(port)), encoding="utf-8")
        process = subprocess.Popen(
            [binary, "-p", str(prefix), "-c", str(config), "-e", str(prefix / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if _wait_until_listening(process, port):
                yield Nginx(port, prefix / "error.log")
                return
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=20)
    log = (prefix / "error.log").read_text(encoding="utf-8", errors="replace")
    pytest.fail(f"nginx did not start:\n{log}")


def _wait_until_listening(process: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False
