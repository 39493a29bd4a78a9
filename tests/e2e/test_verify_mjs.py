"""``examples/verify.mjs``: Node 20's built-in fetch verifies keys through a real service."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from tortoise.context import TortoiseContext

from support.service_console import EMAIL, ENV, LOGIN, PASSWORD, Console
from support.serving import Server, server_env, start_server

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
NODE = "/usr/bin/node"  # Node 20, as the issue says; missing, the test fails (never skips)


def node_verify(server: Server, caller: tuple[str, str], *args: str) -> tuple[int, str]:
    env = server_env(
        WFA_SERVICE_URL=server.base_url,
        WFA_SERVICE_KEY_ID=caller[0],
        WFA_SERVICE_KEY_SECRET=caller[1],
    )
    done = subprocess.run(
        [NODE, str(ROOT / "examples" / "verify.mjs"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout


async def test_verify_mjs_verifies_keys_and_tokens_with_node(
    db: TortoiseContext, tmp_path: Path, e2e_database_url: str, servers: list[Server]
) -> None:
    server = start_server(tmp_path, e2e_database_url, env=ENV)
    servers.append(server)
    console = Console(server.base_url)
    await console.graphql(LOGIN, e=EMAIL, p=PASSWORD)
    caller = await console.create(scopes=["keys:verify"])
    key_id, secret = await console.create()
    token = await console.token(key_id, secret)
    plain = await console.create()
    await console.http.aclose()

    status, out = node_verify(server, caller, key_id, secret, "192.0.2.7")
    assert status == 0
    answer = json.loads(out)
    assert (answer["valid"], answer["code"], answer["key"]["key_id"]) == (True, "VALID", key_id)
    status, out = node_verify(server, caller, "--token", token)
    assert (status, json.loads(out)["code"]) == (0, "VALID")
    status, out = node_verify(server, caller, key_id, "wfas_" + "x" * 40)
    assert (status, json.loads(out)["code"]) == (1, "INVALID_CREDENTIALS")
    # A caller without keys:verify gets no verdict.
    status, out = node_verify(server, plain, key_id, secret)
    assert (status, json.loads(out)["error"]) == (2, "insufficient_scope")
