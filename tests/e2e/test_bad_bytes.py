"""Bad bytes through a real ``wfa-keys serve``: a lone surrogate or a body that is not UTF-8
is a 400 in each face's JSON error shape, signed in or not, never a 500 (docs/limits.md).

Regression tests for what an adversarial run found: a lone surrogate in ``operationName``
and a body with invalid UTF-8 got a plain-text 500 from ``/graphql`` without signing in.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from tortoise.context import TortoiseContext

from support.serving import Server, start_server

pytestmark = pytest.mark.e2e

EMAIL = "owner@acme.example"
PASSWORD = "a long bootstrap password"
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { email } }"
CREATE = """mutation { createApiKey(input: {name: "bad bytes", lifetimeDays: 7}) {
  keySecret apiKey { id } } }"""

#: The raw UTF-8-like bytes of U+D800, which json.loads(bytes) would decode.
RAW_SURROGATE = b"\xed\xa0\x80"

GRAPHQL_BODIES = {
    "operationName escaped": b'{"query": "query Q { me { email } }", "operationName": "\\ud800"}',
    "operationName raw": b'{"query": "query Q { me { email } }", "operationName": "'
    + RAW_SURROGATE
    + b'"}',
    "variables": b'{"query": "query Q { me { email } }", "variables": {"x": ["\\udfff"]}}',
    "variable name": b'{"query": "query Q { me { email } }", "variables": {"\\udc00": 1}}',
    "query text": b'{"query": "query \\ud800 { me { email } }"}',
    "not UTF-8": b'{"query": "{ me { email } }\xff"}',
    "truncated UTF-8": b'{"query": "{ me { email } }", "operationName": "\xc3"}',
}


def token_bodies(key_id: str, secret: str) -> dict[str, bytes]:
    good = f'"key_id": "{key_id}", "key_secret": "{secret}"'.encode()
    return {
        "key_id escaped": b'{"key_id": "wfak_\\ud800", "key_secret": "' + secret.encode() + b'"}',
        "key_secret raw": b'{"key_id": "'
        + key_id.encode()
        + b'", "key_secret": "'
        + RAW_SURROGATE
        + b'"}',
        "another field": b"{" + good + b', "note": "\\udbff"}',
        "not UTF-8": b"{" + good + b', "note": "\xff"}',
    }


WORKFLOW_BODIES = {
    "name escaped": b'{"name": "Nightly \\ud800"}',
    "name raw": b'{"name": "Nightly ' + RAW_SURROGATE + b'"}',
    "another field": b'{"name": "Nightly", "tags": ["\\udc00"]}',
    "not UTF-8": b'{"name": "Nightly \xfe"}',
}


def client(server: Server) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(base_url=server.base_url, trust_env=False, timeout=30)


async def graphql(c: httpx2.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await c.post("/graphql", json={"query": query, "variables": variables})
    body: dict[str, Any] = response.json()
    assert response.status_code == 200, body
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def graphql_refusal(response: httpx2.Response) -> tuple[int, str, str | None]:
    body = response.json()  # JSON, or this fails
    return (
        response.status_code,
        response.headers["content-type"],
        body["errors"][0]["extensions"]["code"],
    )


def api_refusal(response: httpx2.Response) -> tuple[int, str, str]:
    return response.status_code, response.headers["content-type"], response.json()["error"]


async def test_bad_bytes_are_a_400_on_graphql_the_token_endpoint_and_the_api(
    db: TortoiseContext, tmp_path: Path, e2e_database_url: str, servers: list[Server]
) -> None:
    env = {"WFA_BOOTSTRAP_ADMIN_EMAIL": EMAIL, "WFA_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD}
    server = start_server(tmp_path, e2e_database_url, env=env)
    servers.append(server)
    json_headers = {"Content-Type": "application/json"}

    async with client(server) as anonymous, client(server) as admin:
        await graphql(admin, LOGIN, e=EMAIL, p=PASSWORD)
        session_id = admin.cookies["wfa_session"]
        created = (await graphql(admin, CREATE))["createApiKey"]
        key_id, secret = created["apiKey"]["id"], created["keySecret"]

        graphql_answers = {
            (who, name): graphql_refusal(
                await c.post("/graphql", content=body, headers=json_headers)
            )
            for who, c in (("anonymous", anonymous), ("signed in", admin))
            for name, body in GRAPHQL_BODIES.items()
        }
        token_answers = {
            name: api_refusal(await anonymous.post("/api/v1/auth/api-key/token", content=body))
            for name, body in token_bodies(key_id, secret).items()
        }
        workflow_answers = {
            name: api_refusal(
                await anonymous.post(
                    "/api/v1/workflows",
                    content=body,
                    headers=json_headers,
                    auth=(key_id, secret),
                )
            )
            for name, body in WORKFLOW_BODIES.items()
        }
        listed = await anonymous.get("/api/v1/workflows", auth=(key_id, secret))
        still_signed_in = await graphql(admin, "{ me { email } }")

    assert graphql_answers == dict.fromkeys(
        graphql_answers, (400, "application/json", "BAD_USER_INPUT")
    )
    assert token_answers == dict.fromkeys(
        token_answers, (400, "application/json", "invalid_request")
    )
    assert workflow_answers == dict.fromkeys(
        workflow_answers, (400, "application/json", "invalid_request")
    )
    assert listed.json()["workflows"] == []  # nothing made from a bad body
    assert still_signed_in == {"me": {"email": EMAIL}}
    server.stop()
    _assert_clean_logs(server, PASSWORD, session_id, secret)


async def test_bad_bytes_in_headers_never_make_a_server_error(
    db: TortoiseContext, tmp_path: Path, e2e_database_url: str, servers: list[Server]
) -> None:
    server = start_server(tmp_path, e2e_database_url)
    servers.append(server)
    basic = "Basic " + base64.b64encode(RAW_SURROGATE + b":wfas_x").decode()
    answers: dict[tuple[str, str, str], int] = {}
    async with client(server) as c:
        for name in ("X-Request-ID", "Cookie", "Authorization", "X-API-Key-ID", "Accept",
                     "User-Agent", "Content-Type"):  # fmt: skip
            for label, value in (("raw surrogate", RAW_SURROGATE), ("not UTF-8", b"\xff\xfe")):
                headers: dict[bytes, bytes] = {
                    b"Content-Type": b"application/json",
                    name.encode(): b"wfa_session=" + value if name == "Cookie" else value,
                }
                if name == "X-API-Key-ID":
                    headers[b"X-API-Key-Secret"] = b"wfas_x"
                for path, method in (("/graphql", "POST"), ("/api/v1/whoami", "GET")):
                    response = await c.request(
                        method,
                        path,
                        content=b'{"query": "{ __typename }"}' if method == "POST" else None,
                        headers=headers,
                    )
                    response.json()  # JSON, or this fails
                    answers[(name, label, path)] = response.status_code
        basic_answer = await c.get("/api/v1/whoami", headers={"Authorization": basic})

    assert all(status < 500 for status in answers.values()), answers
    # GraphQL reads none of them as text it must keep, bar Content-Type.
    assert {status for (name, _, path), status in answers.items() if path == "/graphql"} == {
        200,
        400,
    }
    assert (basic_answer.status_code, basic_answer.json()["error"]) == (401, "invalid_request")
    server.stop()
    _assert_clean_logs(server)


def _assert_clean_logs(server: Server, *secrets: str) -> None:
    """Every log line JSON, none with a traceback or a secret of the run."""
    lines = [line for line in server.stderr.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]
    assert entries
    assert not [e for e in entries if e.get("level") == "ERROR"], entries
    for secret in (*secrets, "Traceback", "$argon2"):
        assert secret not in server.stderr
