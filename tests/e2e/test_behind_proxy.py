"""Behind a reverse proxy, and without one: whose X-Forwarded-For the service believes.

By default nobody's: a loopback client forging the header changes no throttle bucket and no
audit address. With ``--forwarded-allow-ips 127.0.0.1`` and a real proxy in front, the
audit log records the address the proxy saw and the session cookie is ``Secure`` when the
proxy says the request came over https.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest
from tortoise.context import TortoiseContext

from support.reverse_proxy import reverse_proxy
from support.serving import start_server
from wfa_keys.db import database
from wfa_keys.models import AuditAction, AuditEvent

pytestmark = pytest.mark.e2e

EMAIL = "owner@acme.example"
PASSWORD = "a long bootstrap password"
ENV = {
    "WFA_BOOTSTRAP_ADMIN_EMAIL": EMAIL,
    "WFA_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD,
    "WFA_LOGIN_MAX_FAILURES_PER_EMAIL_IP": "3",
}
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { email } }"
CREATE = 'mutation { createApiKey(input: {name: "proxied"}) { apiKey { id } } }'
FORGED = "<img src=x onerror=alert(1)>"


async def post(
    c: httpx2.AsyncClient, query: str, headers: dict[str, str] | None = None, **variables: Any
) -> httpx2.Response:
    return await c.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers or {}
    )


async def audit(database_url: str) -> list[tuple[AuditAction, str | None]]:
    async with database(database_url, migrate=False):
        rows: list[tuple[AuditAction, str | None]] = (
            await AuditEvent.all().order_by("id").values_list("action", "client_ip")
        )
    return rows


async def test_forged_forwarded_for_from_loopback_changes_no_bucket_and_no_audit_address(
    db: TortoiseContext, tmp_path: Path, e2e_database_url: str, servers: list[Any]
) -> None:
    server = start_server(tmp_path, e2e_database_url, env=ENV)
    servers.append(server)

    async with httpx2.AsyncClient(base_url=server.base_url, trust_env=False, timeout=30) as c:
        codes = []
        for i in range(5):
            response = await post(
                c, LOGIN, {"X-Forwarded-For": f"10.0.{i}.1"}, e=EMAIL, p="wrong password!"
            )
            codes.append(response.json()["errors"][0]["extensions"]["code"])
        forged = await post(c, LOGIN, {"X-Forwarded-For": FORGED}, e=EMAIL, p="wrong again!")

    # Rotating the header did not give each guess a bucket of its own.
    assert codes == ["UNAUTHENTICATED"] * 3 + ["RATE_LIMITED"] * 2
    assert forged.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    addresses = {address for _action, address in await audit(e2e_database_url)}
    assert addresses == {"127.0.0.1"}


async def test_behind_a_trusted_proxy_the_forwarded_address_and_scheme_are_used(
    db: TortoiseContext, tmp_path: Path, e2e_database_url: str, servers: list[Any]
) -> None:
    server = start_server(tmp_path, e2e_database_url, "--forwarded-allow-ips", "127.0.0.1", env=ENV)
    servers.append(server)
    # The client reaches the proxy from 127.0.0.2; the proxy reaches the service from
    # 127.0.0.1, which is trusted.
    transport = httpx2.AsyncHTTPTransport(local_address="127.0.0.2")
    async with (
        reverse_proxy(server.base_url, proto="https") as proxy,
        httpx2.AsyncClient(
            base_url=proxy.base_url, transport=transport, trust_env=False, timeout=30
        ) as c,
    ):
        login = await post(c, LOGIN, {"X-Forwarded-For": "10.9.9.9"}, e=EMAIL, p=PASSWORD)
        cookie = login.headers["set-cookie"]
        # httpx keeps a Secure cookie for https only: send it by hand to the http proxy.
        session = cookie.split(";", 1)[0]
        created = await post(c, CREATE, {"Cookie": session})
    async with httpx2.AsyncClient(base_url=server.base_url, trust_env=False, timeout=30) as c:
        # Directly from the trusted 127.0.0.1 with a header that is no address at all.
        forged = await post(c, LOGIN, {"X-Forwarded-For": FORGED}, e=EMAIL, p="wrong password!")

    assert login.status_code == 200
    assert "errors" not in login.json()
    assert "; secure" in cookie.lower()
    assert "errors" not in created.json(), created.json()
    assert forged.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    events = await audit(e2e_database_url)
    # The proxy replaced the client's own X-Forwarded-For with the address it saw.
    assert (AuditAction.LOGIN_SUCCEEDED, "127.0.0.2") in events
    assert (AuditAction.KEY_CREATED, "127.0.0.2") in events
    assert (AuditAction.LOGIN_FAILED, None) in events
    assert all(address in {"127.0.0.2", None} for _action, address in events)
