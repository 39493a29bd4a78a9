"""The Node receiver of docs/webhooks.md (tests/node/receiver.mjs, the ``standardwebhooks``
npm package) verifies real deliveries of a ``wfa-keys serve`` process, and refuses a
delivery signed with another secret. Needs Node and ``npm ci --prefix tests/node`` (.ci/run
does it): skipped locally without them, a failure in CI."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from tortoise.context import TortoiseContext

from e2e.test_webhook_delivery import Admin, env
from support.serving import Server, start_server

pytestmark = pytest.mark.e2e

NODE_DIR = Path(__file__).parents[1] / "node"


def _install_receiver_packages() -> None:
    """``npm ci`` of tests/node (its lock pins standardwebhooks) when not done yet, as .ci/run
    does: the README's test command needs nothing run by hand."""
    npm = shutil.which("npm")
    if npm is None or (NODE_DIR / "node_modules" / "standardwebhooks").is_dir():
        return
    subprocess.run(
        [npm, "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"],
        capture_output=True,
        timeout=300,
        check=False,
    )


def node_receiver(tmp_path: Path, secret: str) -> tuple[subprocess.Popen[bytes], Path, int]:
    node = shutil.which("node")
    _install_receiver_packages()
    if node is None or not (NODE_DIR / "node_modules" / "standardwebhooks").is_dir():
        if os.environ.get("CI"):
            pytest.fail("Node or tests/node/node_modules missing (npm ci --prefix tests/node)")
        pytest.skip("Node or tests/node/node_modules missing (npm ci --prefix tests/node)")
    record = tmp_path / "node-received.jsonl"
    record.touch()
    process = subprocess.Popen(
        [node, str(NODE_DIR / "receiver.mjs"), str(record)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "WFA_WEBHOOK_SECRET": secret},
        cwd=NODE_DIR,
    )
    assert process.stdout is not None
    match = re.match(r"Listening on (\d+)", process.stdout.readline().decode())
    assert match is not None
    return process, record, int(match.group(1))


def received(record: Path, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in record.read_text().splitlines() if line]
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"expected {count} requests at the Node receiver")


def test_the_node_receiver_of_the_docs_verifies_real_deliveries(
    db: TortoiseContext, e2e_database_url: str, tmp_path: Path, servers: list[Server]
) -> None:
    servers.append(start_server(tmp_path, e2e_database_url, env=env()))
    admin = Admin(servers[0])
    # The receiver needs the secret before it starts: create, then point the URL at it.
    endpoint_id, secret = admin.create_endpoint("http://127.0.0.1:9/hook")
    admin.graphql(
        "mutation($id: ID!) { setWebhookEndpointEnabled(id: $id, enabled: false) { id } }",
        id=endpoint_id,
    )
    process, record, port = node_receiver(tmp_path, secret)
    try:
        admin.graphql(
            """mutation($id: ID!, $url: String!) {
              updateWebhookEndpoint(id: $id, input: {url: $url}) { id } }""",
            id=endpoint_id,
            url=f"http://127.0.0.1:{port}/wfa",
        )
        admin.graphql(
            "mutation($id: ID!) { setWebhookEndpointEnabled(id: $id, enabled: true) { id } }",
            id=endpoint_id,
        )
        key_id = admin.create_key("from-node")
        admin.graphql("mutation($id: ID!) { sendTestWebhook(id: $id) { id } }", id=endpoint_id)
        got = received(record, 2)
        assert [r["verified"] for r in got] == [True, True]
        assert [r["event"]["type"] for r in got] == ["key.created", "webhook.test"]
        assert got[0]["event"]["data"]["key"]["id"] == key_id

        # A delivery signed with another secret is refused by the same code.
        other_id, _ = admin.create_endpoint(f"http://127.0.0.1:{port}/other")
        admin.graphql("mutation($id: ID!) { sendTestWebhook(id: $id) { id } }", id=other_id)
        assert received(record, 3)[2] == {"verified": False}
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
        admin.close()
