"""Start ``uvicorn examples.remote_app:app`` from the repository root, as its docstring says.

The app verifies keys through a real ``wfa-keys serve`` (``service_url``); it binds port 0
and the test reads the port from uvicorn's "Uvicorn running on" line.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from support.serving import server_env

ROOT = Path(__file__).resolve().parents[2]
UVICORN = Path(sys.executable).with_name("uvicorn")
RUNNING_ON = re.compile(r"Uvicorn running on (http://\S+)")
START_ATTEMPTS = 300  # x 0.1 s
STOP_TIMEOUT = 20


@dataclass
class RemoteApp:
    """A running remote app; its output goes to a file."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        return self.process.returncode


def start_remote_app(workdir: Path, service_url: str, key_id: str, key_secret: str) -> RemoteApp:
    """Start the example remote app and wait until it answers."""
    run = len(list(workdir.glob("remote-app-*.log"))) + 1
    log_path = workdir / f"remote-app-{run}.log"
    env = server_env(
        WFA_SERVICE_URL=service_url,
        WFA_SERVICE_KEY_ID=key_id,
        WFA_SERVICE_KEY_SECRET=key_secret,
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(UVICORN),
                "examples.remote_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--log-level",
                "info",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
        )
    app = RemoteApp(process, "", log_path)
    for _ in range(START_ATTEMPTS):
        if process.poll() is not None:
            pytest.fail(f"the remote app exited with {process.returncode}: {app.log}")
        match = RUNNING_ON.search(app.log)
        if match is not None:
            app.base_url = match.group(1)
            try:
                httpx2.get(f"{app.base_url}/whoami", timeout=1, trust_env=False)
                return app
            except httpx2.TransportError:
                pass
        time.sleep(0.1)
    app.stop()
    pytest.fail(f"the remote app did not start: {app.log}")
