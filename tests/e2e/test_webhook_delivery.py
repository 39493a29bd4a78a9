"""Issue 23 end to end: real ``wfa-keys serve`` processes deliver signed webhooks to a real
receiver process on 127.0.0.1, through the database outbox.

Every delivery is verified with the ``standardwebhooks`` reference library and with
``wfa_auth.webhooks.verify``. Waits are bounded polls (50 ms steps, failing at 60 s).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from standardwebhooks import Webhook
from tortoise.context import TortoiseContext

from support.serving import Server, start_server
from support.tcp_proxy import TcpProxy
from support.webhook_receiver import Receiver
from wfa_auth.webhooks import verify

pytestmark = pytest.mark.e2e

EMAIL = "owner@acme.example"
PASSWORD = "a long bootstrap password"
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { email } }"
CREATE_ENDPOINT = """mutation($input: WebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { secret endpoint { id } } }"""
CREATE_KEY = """mutation($name: String!) { createApiKey(input: {name: $name}) {
  keySecret apiKey { id } } }"""
UPDATE_KEY = """mutation($id: ID!, $name: String!) {
  updateApiKey(id: $id, input: {name: $name}) { id } }"""
ENABLE_KEY = "mutation($id: ID!, $on: Boolean!) { setApiKeyEnabled(id: $id, enabled: $on) { id } }"
REGENERATE = """mutation($id: ID!) { regenerateApiKey(id: $id, gracePeriodMinutes: 5) {
  apiKey { id } } }"""
REVOKE = "mutation($id: ID!) { revokePreviousSecret(id: $id) { id } }"
DELETE_KEY = "mutation($id: ID!) { deleteApiKey(id: $id) { id } }"
SEND_TEST = "mutation($id: ID!) { sendTestWebhook(id: $id) { id } }"
DELIVERIES = """query($id: ID!) { webhookDeliveries(endpointId: $id, first: 100) {
  nodes { status responseCode } } }"""


def env(**extra: str) -> dict[str, str]:
    return {
        "WFA_BOOTSTRAP_ADMIN_EMAIL": EMAIL,
        "WFA_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD,
        "WFA_WEBHOOKS_ALLOW_INSECURE": "on",
        "WFA_WEBHOOKS_POLL_INTERVAL_MS": "50",
        "WFA_WEBHOOKS_RETRY_BASE_MS": "200",
        **extra,
    }


class Admin:
    """A signed-in GraphQL client of one server."""

    def __init__(self, server: Server) -> None:
        self.http = httpx2.Client(base_url=server.base_url, trust_env=False, timeout=30)
        self.graphql(LOGIN, e=EMAIL, p=PASSWORD)

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = self.http.post("/graphql", json={"query": query, "variables": variables})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data

    def create_endpoint(self, url: str) -> tuple[str, str]:
        created = self.graphql(CREATE_ENDPOINT, input={"url": url})["createWebhookEndpoint"]
        return created["endpoint"]["id"], created["secret"]

    def create_key(self, name: str) -> str:
        key_id: str = self.graphql(CREATE_KEY, name=name)["createApiKey"]["apiKey"]["id"]
        return key_id

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    running = Receiver.start(tmp_path)
    yield running
    running.stop()


def check_signatures(deliveries: list[dict[str, Any]], secret: str) -> list[dict[str, Any]]:
    """Each delivery verified by both libraries; their payloads."""
    payloads = []
    for delivery in deliveries:
        payload = Webhook(secret).verify(delivery["body"], delivery["headers"])
        assert verify(delivery["body"], delivery["headers"], secret) == payload
        payloads.append(payload)
    return payloads


def names(deliveries: list[dict[str, Any]]) -> list[str]:
    return [json.loads(d["body"])["data"]["key"]["name"] for d in deliveries]


def settle(receiver: Receiver, count: int, seconds: float = 1.5) -> None:
    """Wait a little more and check nothing else arrives (no second delivery)."""
    time.sleep(seconds)
    assert len(receiver.received()) == count


def test_each_event_is_delivered_once_with_a_valid_signature(
    db: TortoiseContext,
    e2e_database_url: str,
    tmp_path: Path,
    servers: list[Server],
    receiver: Receiver,
) -> None:
    servers.append(start_server(tmp_path, e2e_database_url, env=env()))
    admin = Admin(servers[0])
    endpoint_id, secret = admin.create_endpoint(receiver.url)
    key_id = admin.create_key("deploy")
    admin.graphql(UPDATE_KEY, id=key_id, name="deploy-2")
    admin.graphql(ENABLE_KEY, id=key_id, on=False)
    admin.graphql(ENABLE_KEY, id=key_id, on=True)
    admin.graphql(REGENERATE, id=key_id)
    admin.graphql(REVOKE, id=key_id)
    admin.graphql(DELETE_KEY, id=key_id)
    admin.graphql(SEND_TEST, id=endpoint_id)

    got = receiver.wait_for(8)
    settle(receiver, 8)
    payloads = check_signatures(got, secret)
    assert [p["type"] for p in payloads] == [
        "key.created",
        "key.updated",
        "key.disabled",
        "key.enabled",
        "key.regenerated",
        "key.previous_secret_revoked",
        "key.deleted",
        "webhook.test",
    ]
    assert len({d["headers"]["webhook-id"] for d in got}) == 8
    deliveries = admin.graphql(DELIVERIES, id=endpoint_id)["webhookDeliveries"]["nodes"]
    assert [d["status"] for d in deliveries] == ["delivered"] * 8
    admin.close()


def test_a_receiver_down_for_a_while_gets_every_event_in_order_once_back(
    db: TortoiseContext,
    e2e_database_url: str,
    tmp_path: Path,
    servers: list[Server],
    receiver: Receiver,
) -> None:
    proxy = TcpProxy(("127.0.0.1", receiver.port))
    servers.append(start_server(tmp_path, e2e_database_url, env=env()))
    admin = Admin(servers[0])
    endpoint_id, secret = admin.create_endpoint(f"http://127.0.0.1:{proxy.port}/hook")
    proxy.go_down()
    created = [f"key-{n}" for n in range(6)]
    for name in created:
        admin.create_key(name)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        nodes = admin.graphql(DELIVERIES, id=endpoint_id)["webhookDeliveries"]["nodes"]
        if len(nodes) >= 3:
            break
        time.sleep(0.05)
    assert len(nodes) >= 3
    assert {n["status"] for n in nodes} == {"retrying"}
    assert receiver.received() == []

    proxy.come_back()
    got = receiver.wait_for(6)
    settle(receiver, 6)
    check_signatures(got, secret)
    assert names(got) == created
    proxy.close()
    admin.close()


def test_two_serve_processes_never_deliver_one_event_twice(
    db: TortoiseContext,
    e2e_database_url: str,
    tmp_path: Path,
    servers: list[Server],
    receiver: Receiver,
) -> None:
    # Polling every 10 ms, both processes race for every message.
    fast = env(WFA_WEBHOOKS_POLL_INTERVAL_MS="10")
    servers.append(start_server(tmp_path, e2e_database_url, env=fast))
    servers.append(start_server(tmp_path, e2e_database_url, env=fast))
    one, two = Admin(servers[0]), Admin(servers[1])
    _, secret = one.create_endpoint(receiver.url)
    _, other_secret = two.create_endpoint(receiver.url + "?second")
    for number in range(10):
        (one if number % 2 else two).create_key(f"key-{number}")
    got = receiver.wait_for(20)
    settle(receiver, 20, seconds=2)
    ids = [d["headers"]["webhook-id"] for d in got]
    assert len(set(ids)) == 20
    first = [d for d in got if d["path"] == "/hook"]
    second = [d for d in got if d["path"] != "/hook"]
    check_signatures(first, secret)
    check_signatures(second, other_secret)
    # Each endpoint got every key, in order of creation.
    assert names(first) == names(second) == [f"key-{n}" for n in range(10)]
    one.close()
    two.close()


def test_a_sigkill_between_commit_and_delivery_loses_nothing(
    db: TortoiseContext,
    e2e_database_url: str,
    tmp_path: Path,
    servers: list[Server],
    receiver: Receiver,
) -> None:
    # The first process looks for work at start only: what it commits stays in the outbox.
    slow = env(WFA_WEBHOOKS_POLL_INTERVAL_MS="600000")
    servers.append(start_server(tmp_path, e2e_database_url, env=slow))
    admin = Admin(servers[0])
    _, secret = admin.create_endpoint(receiver.url)
    for name in ("before-kill-1", "before-kill-2", "before-kill-3"):
        admin.create_key(name)
    admin.close()
    servers[0].process.send_signal(signal.SIGKILL)
    servers[0].process.wait(timeout=10)
    assert receiver.received() == []

    servers.append(start_server(tmp_path, e2e_database_url, env=env()))
    got = receiver.wait_for(3)
    settle(receiver, 3)
    check_signatures(got, secret)
    assert names(got) == ["before-kill-1", "before-kill-2", "before-kill-3"]


def test_an_endpoint_at_a_private_address_is_refused_by_serve(
    db: TortoiseContext, e2e_database_url: str, tmp_path: Path, servers: list[Server]
) -> None:
    # Without WFA_WEBHOOKS_ALLOW_INSECURE loopback is private too.
    servers.append(
        start_server(tmp_path, e2e_database_url, env=env(WFA_WEBHOOKS_ALLOW_INSECURE="off"))
    )
    admin = Admin(servers[0])
    for url in ("https://10.1.2.3/hook", "https://127.0.0.1/hook", "https://169.254.169.254/"):
        response = admin.http.post(
            "/graphql", json={"query": CREATE_ENDPOINT, "variables": {"input": {"url": url}}}
        )
        errors = response.json()["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["BAD_USER_INPUT"]
        assert errors[0]["extensions"]["field"] == "input.url"
    admin.close()
