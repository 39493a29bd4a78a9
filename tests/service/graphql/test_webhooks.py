"""Webhook endpoints through GraphQL: the fixed names, the limits, the guard, the audit log.

URLs here are literal public addresses: creating an endpoint resolves nothing and connects
nowhere; deliveries go through a mock transport, never the network.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support.clock import Clock
from support.gql import Api, errors_of, only_error_code
from wfa_keys.models import AuditAction, AuditEvent, WebhookEndpoint
from wfa_keys.models import WebhookMessage as Message
from wfa_keys.webhooks import endpoints
from wfa_keys.webhooks.guard import AddressGuard
from wfa_keys.webhooks.sender import Sender
from wfa_keys.webhooks.worker import WebhookWorker

URL = "https://93.184.216.34/hooks/wfa"

CREATE = """
mutation Create($input: WebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) {
    secret
    endpoint { id url events enabled description disabledReason }
  }
}
"""
LIST = "{ webhookEndpoints { id url events enabled description } }"
UPDATE = """
mutation Update($id: ID!, $input: UpdateWebhookEndpointInput!) {
  updateWebhookEndpoint(id: $id, input: $input) { id url events description }
}
"""
ENABLE = """
mutation Enable($id: ID!, $enabled: Boolean!) {
  setWebhookEndpointEnabled(id: $id, enabled: $enabled) { id enabled }
}
"""
ROTATE = "mutation Rotate($id: ID!) { rotateWebhookSecret(id: $id) { secret endpoint { id } } }"
DELETE = "mutation Delete($id: ID!) { deleteWebhookEndpoint(id: $id) }"
TEST = "mutation Test($id: ID!) { sendTestWebhook(id: $id) { id eventType status } }"
DELIVERIES = """
query Deliveries($id: ID!) {
  webhookDeliveries(endpointId: $id, first: 10) {
    totalCount
    nodes { eventType status responseCode durationMs nextRetryAt error }
  }
}
"""


async def create(api: Api, url: str = URL, **fields: Any) -> dict[str, Any]:
    body = await api(CREATE, input={"url": url, **fields})
    assert "errors" not in body, body
    created: dict[str, Any] = body["data"]["createWebhookEndpoint"]
    return created


async def test_an_endpoint_is_created_with_a_secret_shown_once(admin: Api) -> None:
    created = await create(admin, events=["key.disabled", "key.expiring"], description="ops")
    assert created["secret"].startswith("whsec_")
    assert created["endpoint"] | {"id": None} == {
        "id": None,
        "url": URL,
        "events": ["key.disabled", "key.expiring"],
        "enabled": True,
        "description": "ops",
        "disabledReason": None,
    }
    listed = (await admin(LIST))["data"]["webhookEndpoints"]
    assert [e["id"] for e in listed] == [created["endpoint"]["id"]]
    assert created["secret"] not in str(await admin(LIST))
    events = await AuditEvent.filter(action=AuditAction.WEBHOOK_CREATED).values("detail")
    assert events == [
        {"detail": {"endpointId": created["endpoint"]["id"], "host": "93.184.216.34"}}
    ]


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.216.34/hook",
        "https://10.0.0.1/hook",
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest",
        "https://[::1]/hook",
        "not a url",
    ],
)
async def test_an_endpoint_at_a_private_address_or_without_https_is_refused(
    admin: Api, url: str
) -> None:
    body = await admin(CREATE, input={"url": url})
    assert errors_of(body) == [("BAD_USER_INPUT", "input.url")]
    assert await WebhookEndpoint.all().count() == 0
    assert not await AuditEvent.filter(action=AuditAction.WEBHOOK_CREATED).exists()


async def test_an_unknown_event_type_is_refused(admin: Api) -> None:
    body = await admin(CREATE, input={"url": URL, "events": ["key.stolen"]})
    assert errors_of(body) == [("BAD_USER_INPUT", "input.events")]


async def test_an_organization_has_at_most_ten_endpoints(admin: Api) -> None:
    for number in range(10):
        await create(admin, f"{URL}/{number}")
    body = await admin(CREATE, input={"url": URL})
    assert errors_of(body) == [("BAD_USER_INPUT", "input.url")]
    assert "at most 10" in body["errors"][0]["message"]
    assert await WebhookEndpoint.all().count() == 10


async def test_update_enable_rotate_and_delete_are_audited(admin: Api) -> None:
    created = await create(admin)
    endpoint_id = created["endpoint"]["id"]
    updated = await admin(UPDATE, id=endpoint_id, input={"description": "new", "events": []})
    assert updated["data"]["updateWebhookEndpoint"]["description"] == "new"
    disabled = await admin(ENABLE, id=endpoint_id, enabled=False)
    assert disabled["data"]["setWebhookEndpointEnabled"]["enabled"] is False
    await admin(ENABLE, id=endpoint_id, enabled=True)
    rotated = await admin(ROTATE, id=endpoint_id)
    new_secret = rotated["data"]["rotateWebhookSecret"]["secret"]
    assert new_secret.startswith("whsec_")
    assert new_secret != created["secret"]
    assert (await WebhookEndpoint.get(id=endpoint_id)).signing_secret == new_secret
    deleted = await admin(DELETE, id=endpoint_id)
    assert deleted["data"]["deleteWebhookEndpoint"] == endpoint_id
    actions: list[Any] = await AuditEvent.all().order_by("id").values_list("action", flat=True)
    assert [a for a in actions if str(a).startswith("webhook")] == [
        AuditAction.WEBHOOK_CREATED,
        AuditAction.WEBHOOK_UPDATED,
        AuditAction.WEBHOOK_DISABLED,
        AuditAction.WEBHOOK_ENABLED,
        AuditAction.WEBHOOK_SECRET_ROTATED,
        AuditAction.WEBHOOK_DELETED,
    ]
    # No audit detail holds a secret.
    details = await AuditEvent.all().values_list("detail", flat=True)
    assert created["secret"] not in str(details)
    assert new_secret not in str(details)


async def test_another_organizations_endpoint_is_not_found(admin: Api, other_admin: Api) -> None:
    endpoint_id = (await create(admin))["endpoint"]["id"]
    assert (await other_admin(LIST))["data"]["webhookEndpoints"] == []
    cases: list[tuple[str, dict[str, Any]]] = [
        (UPDATE, {"input": {"description": "mine"}}),
        (ENABLE, {"enabled": False}),
        (ROTATE, {}),
        (DELETE, {}),
        (TEST, {}),
        (DELIVERIES, {}),
    ]
    for query, variables in cases:
        body = await other_admin(query, id=endpoint_id, **variables)
        assert only_error_code(body) == "NOT_FOUND", body
        assert "webhook endpoint" in body["errors"][0]["message"]
    endpoint = await WebhookEndpoint.get(id=endpoint_id)
    assert endpoint.enabled
    assert endpoint.description == ""


async def test_members_cannot_manage_webhooks(member: Api) -> None:
    assert only_error_code(await member(LIST)) == "FORBIDDEN"
    assert only_error_code(await member(CREATE, input={"url": URL})) == "FORBIDDEN"


async def test_a_failing_audit_write_leaves_no_endpoint(
    admin: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit table is gone")

    monkeypatch.setattr(endpoints, "record_event", fail)
    body = await admin(CREATE, input={"url": URL})
    assert only_error_code(body) == "INTERNAL_SERVER_ERROR"
    assert await WebhookEndpoint.all().count() == 0


async def test_a_test_event_is_queued_and_its_deliveries_are_listed(admin: Api) -> None:
    endpoint_id = (await create(admin))["endpoint"]["id"]
    queued = (await admin(TEST, id=endpoint_id))["data"]["sendTestWebhook"]
    assert queued["eventType"] == "webhook.test"
    assert queued["id"].startswith("msg_")
    assert await AuditEvent.filter(action=AuditAction.WEBHOOK_TESTED).count() == 1

    answers = iter([httpx.Response(500), httpx.Response(200)])
    sender = Sender(AddressGuard(), transport=httpx.MockTransport(lambda _r: next(answers)))
    clock = Clock()
    clock.advance(60)
    worker = WebhookWorker(sender, clock=clock)
    assert await worker.run_once() == 1
    clock.advance(10)
    assert await worker.run_once() == 1
    await sender.aclose()

    page = (await admin(DELIVERIES, id=endpoint_id))["data"]["webhookDeliveries"]
    assert page["totalCount"] == 2
    newest, oldest = page["nodes"]
    assert oldest["status"] == "retrying"
    assert oldest["responseCode"] == 500
    assert oldest["nextRetryAt"] is not None
    assert newest["status"] == "delivered"
    assert newest["responseCode"] == 200
    assert (await Message.get()).status == "delivered"
