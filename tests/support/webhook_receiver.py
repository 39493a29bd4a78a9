"""A webhook receiver in a process of its own on 127.0.0.1, recording what it is sent.

Run as a script (``python webhook_receiver.py RECORD``) it serves HTTP on a free port, prints
``Listening on PORT`` and appends each request (path, headers, body) as a JSON line to
RECORD. It answers 204, or the status written in ``RECORD.status`` when that file exists.
:class:`Receiver` starts and reads it from a test.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

START_TIMEOUT = 15.0


@dataclass
class Receiver:
    """A running receiver process; ``url`` ends with ``/hook``."""

    process: subprocess.Popen[bytes]
    record: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @classmethod
    def start(cls, workdir: Path) -> Receiver:
        """Start a receiver recording into ``workdir``."""
        record = workdir / f"received-{time.monotonic_ns()}.jsonl"
        record.touch()
        process = subprocess.Popen(
            [sys.executable, __file__, str(record)],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        match = re.match(r"Listening on (\d+)", line)
        assert match is not None, f"the receiver did not start: {line!r}"
        return cls(process, record, int(match.group(1)))

    def answer_with(self, status: int | None) -> None:
        """Answer every request with ``status`` from now on (None: 204 again)."""
        path = self.record.with_suffix(".status")
        if status is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(str(status))

    def received(self) -> list[dict[str, Any]]:
        """Every request so far, oldest first."""
        lines = self.record.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def wait_for(self, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        """The requests once there are at least ``count`` (bounded in time)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received()
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"expected {count} deliveries, got {len(self.received())}")

    def stop(self) -> None:
        """Stop the process."""
        self.process.terminate()
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


class _Handler(BaseHTTPRequestHandler):
    record: Path

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode()
        entry = {
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        status_file = self.record.with_suffix(".status")
        status = int(status_file.read_text()) if status_file.exists() else 204
        if status < 300:
            with self.record.open("a") as out:
                out.write(json.dumps(entry) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the record file is the log


def main() -> None:
    """Serve until killed."""
    _Handler.record = Path(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    print(f"Listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
