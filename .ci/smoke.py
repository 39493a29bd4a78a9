"""Smoke test of the built wheels, run with the Python of a virtualenv holding only them.

Usage: ``VENV/bin/python .ci/smoke.py`` (from any directory but the checkout's ``src``). It
starts ``wfa-keys serve`` on a new SQLite file in a temporary directory, so the migrations
must ship in the wheel; loads the console and its assets, so the static files must too; signs
in through GraphQL, creates a key and calls ``/api/v1/whoami`` with it. Only the standard
library: the wheels' own dependencies are all the virtualenv has.
"""

from __future__ import annotations

import base64
import http.cookiejar
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

PASSWORD = "smoke-test-password-1"
EMAIL = "admin@smoke.test"


def main() -> int:
    """Run the smoke test; exit status 0 when every step worked."""
    import wfa_auth
    import wfa_keys

    # The code must come from the installed wheels, not from a checkout on sys.path.
    for module in (wfa_auth, wfa_keys):
        assert "site-packages" in (module.__file__ or ""), module.__file__
    assert wfa_auth.__version__ == importlib.metadata.version("wfa-auth")
    assert wfa_keys.__version__ == importlib.metadata.version("wfa-keys")
    wfa_keys_command = str(Path(sys.executable).with_name("wfa-keys"))
    shown = subprocess.run(
        [wfa_keys_command, "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert shown.strip() == f"wfa-keys {wfa_keys.__version__}", shown

    with tempfile.TemporaryDirectory(prefix="wfa-keys-smoke-") as work:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WFA_")}
        env.update(
            WFA_DATABASE_URL=f"sqlite://{work}/smoke.sqlite3",
            WFA_BOOTSTRAP_ADMIN_EMAIL=EMAIL,
            WFA_BOOTSTRAP_ADMIN_PASSWORD=PASSWORD,
        )
        with Path(work, "serve.log").open("w+b") as log:
            server = subprocess.Popen(
                [wfa_keys_command, "serve", "--port", "0"],
                cwd=work,
                env=env,
                stdout=subprocess.PIPE,
                stderr=log,
            )
            try:
                _exercise(_serving_on(server))
            except BaseException:
                log.seek(0)
                sys.stderr.write(log.read().decode(errors="replace"))
                raise
            finally:
                server.terminate()
                server.wait(timeout=30)
    print("smoke test of the wheels: passed")
    return 0


def _serving_on(server: subprocess.Popen[bytes]) -> str:
    assert server.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = server.stdout.readline().decode()
        if not line:
            raise SystemExit(f"wfa-keys serve ended with status {server.wait()}")
        found = re.match(r"Serving on (http://\S+)", line)
        if found:
            return found.group(1)
    raise SystemExit("wfa-keys serve did not start within 60 s")


def _exercise(base: str) -> None:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def get(path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(base + path, headers=headers or {})
        with opener.open(request, timeout=30) as answer:
            return answer.status, answer.read()

    def graphql(query: str, **variables: Any) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(
            base + "/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with opener.open(request, timeout=30) as answer:
            result: dict[str, Any] = json.load(answer)
        assert "errors" not in result, result
        return result["data"]

    for _ in range(100):  # the server prints its line, then starts accepting
        try:
            status, _body = get("/healthz")
            break
        except OSError:
            time.sleep(0.1)
    assert status == 200

    status, page = get("/")
    assert status == 200
    assert b"assets/js/main.js" in page, page[:200]
    for asset in ("/assets/js/main.js", "/assets/console.css"):
        assert get(asset)[0] == 200, asset

    login = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { email } }"
    assert graphql(login, e=EMAIL, p=PASSWORD)["login"]["email"] == EMAIL
    created = graphql(
        'mutation { createApiKey(input: {name: "smoke"}) { keySecret apiKey { id } } }'
    )
    key_id = created["createApiKey"]["apiKey"]["id"]
    secret = created["createApiKey"]["keySecret"]

    basic = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
    status, body = get("/api/v1/whoami", {"Authorization": f"Basic {basic}"})
    assert status == 200, body
    assert json.loads(body)["key_id"] == key_id, body


if __name__ == "__main__":
    sys.exit(main())
