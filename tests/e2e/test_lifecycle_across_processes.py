"""Issue 10 end to end: real ``wfa-keys serve`` processes, real HTTP, GraphQL and ``/api``.

Keys get scopes and allow-lists through GraphQL and the Workflow Automation API honours them;
a regeneration with a grace period keeps the old secret working until it ends; changes made
on one process are honoured by another on the same database (bounded polls: 50 ms steps,
failing at 3 s; the promise is 1 s); ``serve`` disables inactive keys by itself.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from tortoise.context import TortoiseContext
from tortoise.transactions import in_transaction

from support.serving import WFA_KEYS, Server, server_env, start_server
from wfa_keys.changes import publish_key_change
from wfa_keys.db import database
from wfa_keys.models import ApiKey, AuditAction, AuditEvent

pytestmark = pytest.mark.e2e

EMAIL = "owner@acme.example"
PASSWORD = "a long bootstrap password"
ENV = {"WFA_BOOTSTRAP_ADMIN_EMAIL": EMAIL, "WFA_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD}
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { email } }"
CREATE = """mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) {
  keySecret apiKey { id scopes allowedCidrs } } }"""
UPDATE = """mutation($id: ID!, $input: UpdateApiKeyInput!) {
  updateApiKey(id: $id, input: $input) { id scopes allowedCidrs } }"""
REGENERATE = """mutation($id: ID!, $minutes: Int!) {
  regenerateApiKey(id: $id, gracePeriodMinutes: $minutes) {
    keySecret apiKey { previousSecretExpiresAt } } }"""
REVOKE = "mutation($id: ID!) { revokePreviousSecret(id: $id) { previousSecretExpiresAt } }"
SETTINGS = """mutation($days: Int) { setOrganizationSettings(input: {keyInactivityDays: $days}) {
  keyInactivityDays } }"""
KEY = "query($id: ID!) { apiKey(id: $id) { status lastUsedAt lastUsedIp } }"
EVENTS = "query($id: ID!) { auditEvents(keyId: $id) { nodes { action } } }"
TOKEN_PATH = "/api/v1/auth/api-key/token"
WORKFLOWS = "/api/v1/workflows"
STEP = 0.05
GIVE_UP = 3.0


def basic(key_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Admin:
    """A signed-in GraphQL client of one server, and a plain client of its ``/api``."""

    def __init__(self, server: Server) -> None:
        self.http = httpx2.AsyncClient(base_url=server.base_url, trust_env=False, timeout=30)

    async def __aenter__(self) -> Admin:
        await self.graphql(LOGIN, e=EMAIL, p=PASSWORD)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data

    async def create(self, **input: Any) -> tuple[str, str]:
        created = (await self.graphql(CREATE, input={"name": "e2e", **input}))["createApiKey"]
        return created["apiKey"]["id"], created["keySecret"]

    async def token(self, key_id: str, secret: str) -> httpx2.Response:
        return await self.http.post(TOKEN_PATH, json={"key_id": key_id, "key_secret": secret})


async def api_call(
    server: Server, method: str, path: str, headers: dict[str, str], **kwargs: Any
) -> httpx2.Response:
    """One call on a new connection."""
    async with httpx2.AsyncClient(base_url=server.base_url, trust_env=False, timeout=30) as c:
        return await c.request(method, path, headers=headers, **kwargs)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` every 50 ms until it holds; fail after 3 s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GIVE_UP
    while not await check():
        if loop.time() > deadline:
            pytest.fail(f"not within {GIVE_UP} s: {what}")
        await asyncio.sleep(STEP)


def status_is(
    server: Server, expected: int, method: str, path: str, headers: dict[str, str]
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await api_call(server, method, path, headers)).status_code == expected

    return check


async def test_scopes_and_allow_lists_set_through_graphql_are_honoured_by_the_workflows_api(
    db: TortoiseContext, tmp_path: Path, e2e_database_url: str, servers: list[Server]
) -> None:
    server = start_server(tmp_path, e2e_database_url, env=ENV)
    servers.append(server)

    async with Admin(server) as admin:
        writer = await admin.create()
        reader = await admin.create(scopes=["workflows:read"], allowedCidrs=["127.0.0.0/8"])
        outsider = await admin.create(allowedCidrs=["192.0.2.0/24", "2001:db8::/32"])

        created = await api_call(server, "POST", WORKFLOWS, basic(*writer), json={"name": "n"})
        listed = await api_call(server, "GET", WORKFLOWS, basic(*reader))
        refused_write = await api_call(server, "POST", WORKFLOWS, basic(*reader), json={})
        whoami = await api_call(server, "GET", "/api/v1/whoami", basic(*reader))
        outside = await api_call(server, "GET", WORKFLOWS, basic(*outsider))
        outside_token = await admin.token(*outsider)
        wrong_secret = await api_call(
            server, "GET", WORKFLOWS, basic(outsider[0], "wfas_" + "x" * 40)
        )
        reader_token = (await admin.token(*reader)).json()["access_token"]
        with_token = await api_call(server, "GET", WORKFLOWS, bearer(reader_token))
        write_with_token = await api_call(server, "POST", WORKFLOWS, bearer(reader_token), json={})

    assert created.status_code == 201, created.text
    assert listed.status_code == 200
    assert [w["name"] for w in listed.json()["workflows"]] == ["n"]
    assert refused_write.status_code == 403
    assert refused_write.json()["error"] == "insufficient_scope"
    assert refused_write.json()["scope"] == "workflows:write"
    assert whoami.json()["scopes"] == ["workflows:read"]
    assert (outside.status_code, outside.json()["error"]) == (403, "ip_not_allowed")
    assert (outside_token.status_code, outside_token.json()["error"]) == (403, "ip_not_allowed")
    # Only a caller who knows the secret learns that the address is the problem.
    assert wrong_secret.status_code == 401
    assert with_token.status_code == 200
    assert write_with_token.status_code == 403
    server.stop()
    async with database(e2e_database_url, migrate=False):
        used = await ApiKey.get(key_id=reader[0])
    # Written when the server stopped, with the address of the call.
    assert used.last_used_at is not None
    assert used.last_used_ip == "127.0.0.1"


async def test_a_grace_period_keeps_the_old_secret_until_revoked_and_audits_each_step(
    db: TortoiseContext, tmp_path: Path, e2e_database_url: str, servers: list[Server]
) -> None:
    server = start_server(tmp_path, e2e_database_url, env=ENV)
    servers.append(server)

    async with Admin(server) as admin:
        key_id, old = await admin.create()
        old_token = (await admin.token(key_id, old)).json()["access_token"]
        regenerated = (await admin.graphql(REGENERATE, id=key_id, minutes=60))["regenerateApiKey"]
        new = regenerated["keySecret"]
        during = [
            (await api_call(server, "GET", WORKFLOWS, headers)).status_code
            for headers in (basic(key_id, old), bearer(old_token), basic(key_id, new))
        ]
        token_during = await admin.token(key_id, old)
        revoked = (await admin.graphql(REVOKE, id=key_id))["revokePreviousSecret"]
        after = [
            (await api_call(server, "GET", WORKFLOWS, headers)).status_code
            for headers in (
                basic(key_id, old),
                bearer(old_token),
                bearer(token_during.json()["access_token"]),
                basic(key_id, new),
            )
        ]
        # Removing a scope is honoured from the next call on.
        await admin.graphql(UPDATE, id=key_id, input={"scopes": ["workflows:write"]})
        without_read = await api_call(server, "GET", WORKFLOWS, basic(key_id, new))
        events = await admin.graphql(EVENTS, id=key_id)

    expires = datetime.fromisoformat(regenerated["apiKey"]["previousSecretExpiresAt"])
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(minutes=60)
    assert during == [200, 200, 200]
    assert token_during.status_code == 200
    assert revoked["previousSecretExpiresAt"] is None
    assert after == [401, 401, 401, 200]
    assert without_read.status_code == 403
    assert [e["action"] for e in events["auditEvents"]["nodes"]] == [
        "KEY_UPDATED",
        "PREVIOUS_SECRET_REVOKED",
        "KEY_REGENERATED",
        "KEY_CREATED",
    ]


def two_servers(tmp_path: Path, database_url: str, servers: list[Server]) -> tuple[Server, Server]:
    """Two ``wfa-keys serve`` processes on one database (on SQLite, one file)."""
    for _ in range(2):
        servers.append(start_server(tmp_path, database_url, env=ENV))
    return servers[-2], servers[-1]


async def _shorten_grace_period(database_url: str, key_id: str, seconds: float) -> None:
    """Move the end of a grace period closer, as if its minutes had passed, and announce it."""
    async with database(database_url, migrate=False), in_transaction():
        await ApiKey.filter(key_id=key_id).update(
            previous_secret_expires_at=datetime.now(UTC) + timedelta(seconds=seconds)
        )
        await publish_key_change(key_id)


async def test_the_end_of_a_grace_period_on_one_process_is_honoured_by_another(
    db: TortoiseContext, tmp_path: Path, e2e_database_url: str, servers: list[Server]
) -> None:
    a, b = two_servers(tmp_path, e2e_database_url, servers)

    async with Admin(a) as admin:
        key_id, old = await admin.create()
        # B caches the key's record and the old secret, and issues a token for it.
        assert (await api_call(b, "GET", WORKFLOWS, basic(key_id, old))).status_code == 200
        old_token = (
            await api_call(b, "POST", TOKEN_PATH, {}, json={"key_id": key_id, "key_secret": old})
        ).json()["access_token"]
        other_id, other_old = await admin.create()
        assert (await api_call(b, "GET", WORKFLOWS, basic(other_id, other_old))).status_code == 200

        new = (await admin.graphql(REGENERATE, id=key_id, minutes=60))["regenerateApiKey"][
            "keySecret"
        ]
        await eventually(
            status_is(b, 200, "GET", WORKFLOWS, basic(key_id, new)), "B accepts the new secret"
        )
        assert (await api_call(b, "GET", WORKFLOWS, basic(key_id, old))).status_code == 200
        assert (await api_call(b, "GET", WORKFLOWS, bearer(old_token))).status_code == 200
        # Revoked on A: B refuses the old secret and its token, keeps the new secret.
        await admin.graphql(REVOKE, id=key_id)
        await eventually(
            status_is(b, 401, "GET", WORKFLOWS, basic(key_id, old)), "B refuses the old secret"
        )
        await eventually(
            status_is(b, 401, "GET", WORKFLOWS, bearer(old_token)), "B refuses its token"
        )
        assert (await api_call(b, "GET", WORKFLOWS, basic(key_id, new))).status_code == 200

        # A grace period that runs out: B stops accepting the old secret by itself.
        await admin.graphql(REGENERATE, id=other_id, minutes=1)
        assert (await api_call(b, "GET", WORKFLOWS, basic(other_id, other_old))).status_code == 200
        await _shorten_grace_period(e2e_database_url, other_id, seconds=2.0)
        assert (await api_call(b, "GET", WORKFLOWS, basic(other_id, other_old))).status_code == 200
        await eventually(
            status_is(b, 401, "GET", WORKFLOWS, basic(other_id, other_old)),
            "B refuses the old secret once its grace period ended (2 s from then)",
        )


async def test_an_update_on_one_process_is_honoured_by_another(
    db: TortoiseContext, tmp_path: Path, e2e_database_url: str, servers: list[Server]
) -> None:
    a, b = two_servers(tmp_path, e2e_database_url, servers)

    async with Admin(a) as admin:
        key_id, secret = await admin.create()
        token = (
            await api_call(b, "POST", TOKEN_PATH, {}, json={"key_id": key_id, "key_secret": secret})
        ).json()["access_token"]
        for headers in (basic(key_id, secret), bearer(token)):
            assert (await api_call(b, "GET", WORKFLOWS, headers)).status_code == 200

        await admin.graphql(UPDATE, id=key_id, input={"scopes": ["workflows:write"]})
        for headers in (basic(key_id, secret), bearer(token)):
            await eventually(
                status_is(b, 403, "GET", WORKFLOWS, headers), "B refuses the removed scope"
            )

        await admin.graphql(UPDATE, id=key_id, input={"allowedCidrs": ["192.0.2.0/24"]})
        await eventually(
            status_is(b, 403, "GET", "/api/v1/whoami", basic(key_id, secret)),
            "B refuses calls from outside the allow-list",
        )
        refused = await api_call(b, "GET", "/api/v1/whoami", basic(key_id, secret))
        assert refused.json()["error"] == "ip_not_allowed"

        await admin.graphql(UPDATE, id=key_id, input={"allowedCidrs": [], "scopes": []})
        await eventually(
            status_is(b, 200, "GET", "/api/v1/whoami", basic(key_id, secret)),
            "B accepts calls from anywhere again",
        )
        assert (await api_call(b, "GET", WORKFLOWS, basic(key_id, secret))).status_code == 403


async def test_serve_disables_a_key_unused_past_the_inactivity_limit_by_itself(
    db: TortoiseContext, tmp_path: Path, e2e_database_url: str, servers: list[Server]
) -> None:
    server = start_server(
        tmp_path, e2e_database_url, env=ENV | {"WFA_INACTIVITY_CHECK_INTERVAL": "1"}
    )
    servers.append(server)

    async with Admin(server) as admin:
        stale_id, stale_secret = await admin.create()
        fresh_id, _ = await admin.create()
        settings = await admin.graphql(SETTINGS, days=30)
        # The server caches the key's record on a call with a wrong secret, which
        # records no use (a use would make the key active again when its minute is written).
        wrong = await api_call(server, "GET", WORKFLOWS, basic(stale_id, "wfas_" + "x" * 40))
        assert wrong.status_code == 401
        async with database(e2e_database_url, migrate=False):
            await ApiKey.filter(key_id=stale_id).update(
                created_at=datetime.now(UTC) - timedelta(days=31)
            )

        async def disabled() -> bool:
            key = (await admin.graphql(KEY, id=stale_id))["apiKey"]
            return bool(key["status"] == "DISABLED")

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10  # a check every second
        while not await disabled():
            assert loop.time() < deadline, "the key was not disabled within 10 s"
            await asyncio.sleep(0.1)
        refused = await api_call(server, "GET", WORKFLOWS, basic(stale_id, stale_secret))
        fresh = (await admin.graphql(KEY, id=fresh_id))["apiKey"]
        events = await admin.graphql(EVENTS, id=stale_id)

    assert settings["setOrganizationSettings"]["keyInactivityDays"] == 30
    # This process's middleware was told at once: the cached record does not let it in.
    assert refused.status_code == 401
    assert refused.json()["error"] == "key_disabled"
    assert fresh["status"] == "ACTIVE"
    assert events["auditEvents"]["nodes"][0]["action"] == "KEY_AUTO_DISABLED"
    async with database(e2e_database_url, migrate=False):
        event = await AuditEvent.get(action=AuditAction.KEY_AUTO_DISABLED)
    assert event.detail == {"inactivityDays": 30}
    assert event.key_id == stale_id


async def test_a_key_disabled_with_the_command_line_is_refused_by_a_running_server(
    db: TortoiseContext, tmp_path: Path, e2e_database_url: str, servers: list[Server]
) -> None:
    server = start_server(tmp_path, e2e_database_url, env=ENV)
    servers.append(server)
    async with Admin(server) as admin:
        key_id, secret = await admin.create()
        token = (await admin.token(key_id, secret)).json()["access_token"]
    whoami = "/api/v1/whoami"
    assert (await api_call(server, "GET", whoami, basic(key_id, secret))).status_code == 200
    assert (await api_call(server, "GET", whoami, bearer(token))).status_code == 200

    disabled = await asyncio.to_thread(
        subprocess.run,
        [str(WFA_KEYS), "disable-key", key_id],
        env=server_env(WFA_DATABASE_URL=e2e_database_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert disabled.returncode == 0, disabled.stderr
    await eventually(
        status_is(server, 401, "GET", whoami, basic(key_id, secret)), "the key is refused"
    )
    refused = await api_call(server, "GET", whoami, basic(key_id, secret))
    assert refused.json()["error"] == "key_disabled"
    assert (await api_call(server, "GET", whoami, bearer(token))).status_code == 401
