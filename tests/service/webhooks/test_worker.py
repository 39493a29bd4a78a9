"""The delivery worker against a real receiver process on loopback, with an injected clock."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from support.clock import Clock
from support.webhook_receiver import Receiver
from wfa_keys.keys import Actor, KeyManager
from wfa_keys.models import AuditAction, AuditEvent, WebhookDelivery, WebhookEndpoint
from wfa_keys.models import WebhookMessage as Message
from wfa_keys.webhooks.endpoints import WebhookManager
from wfa_keys.webhooks.guard import AddressGuard
from wfa_keys.webhooks.running import prune_history
from wfa_keys.webhooks.sender import Sender
from wfa_keys.webhooks.worker import RetryPolicy, WebhookWorker


@pytest.fixture
def clock() -> Clock:
    """The worker's clock, a minute ahead: what the test writes is due at once."""
    clock = Clock()
    clock.advance(60)
    return clock


@pytest.fixture
async def worker(insecure_guard: AddressGuard, clock: Clock) -> WebhookWorker:
    return WebhookWorker(Sender(insecure_guard, timeout=5), clock=clock)


async def drain(worker: WebhookWorker, rounds: int = 20) -> None:
    """Run passes until nothing is due (bounded)."""
    for _ in range(rounds):
        if not await worker.run_once():
            return


async def test_each_key_event_is_delivered_once_with_a_valid_signature(
    actor: Actor,
    key_manager: KeyManager,
    webhooks: WebhookManager,
    worker: WebhookWorker,
    receiver: Receiver,
) -> None:
    new = await webhooks.create_endpoint(actor, url=receiver.url)
    key = await key_manager.create_key(actor, name="deploy")
    await key_manager.update_key(actor, key.key.key_id, name="deploy-2")
    await key_manager.set_key_enabled(actor, key.key.key_id, False)
    await key_manager.set_key_enabled(actor, key.key.key_id, True)
    await key_manager.regenerate_key(actor, key.key.key_id, grace_period_minutes=5)
    await key_manager.revoke_previous_secret(actor, key.key.key_id)
    await key_manager.delete_key(actor, key.key.key_id)

    await drain(worker)
    await drain(worker)  # a second pass finds nothing more to send

    got = receiver.received()
    types = [json.loads(r["body"])["type"] for r in got]
    assert types == [
        "key.created",
        "key.updated",
        "key.disabled",
        "key.enabled",
        "key.regenerated",
        "key.previous_secret_revoked",
        "key.deleted",
    ]
    verifier = Webhook(new.secret)
    for request in got:
        payload = verifier.verify(request["body"], request["headers"])
        assert payload["data"]["key"]["id"] == key.key.key_id
        assert payload["data"]["organization"]["name"] == "Acme"
        # Never a secret or a hash, whatever the event.
        assert key.key_secret not in request["body"]
        assert "$argon2" not in request["body"]
        assert "secret_hash" not in request["body"]
    assert json.loads(got[1]["body"])["data"]["detail"] == {"changed": ["name"]}
    assert len({r["headers"]["webhook-id"] for r in got}) == len(got)
    assert await Message.filter(status="delivered").count() == len(got)
    assert await WebhookDelivery.filter(status="delivered").count() == len(got)


async def test_a_failed_delivery_is_retried_first_within_the_retry_base_then_in_order(
    actor: Actor,
    key_manager: KeyManager,
    webhooks: WebhookManager,
    worker: WebhookWorker,
    receiver: Receiver,
    clock: Clock,
) -> None:
    await webhooks.create_endpoint(actor, url=receiver.url)
    receiver.answer_with(503)
    for name in ("one", "two", "three"):
        await key_manager.create_key(actor, name=name)
    clock.advance(1)
    assert await worker.run_once() == 1  # only the endpoint's head: order is kept
    failed = await WebhookDelivery.get()
    assert failed.status == "retrying"
    assert failed.response_code == 503
    assert failed.next_retry_at is not None
    assert timedelta(0) < failed.next_retry_at - clock.now <= timedelta(seconds=5)
    assert await worker.run_once() == 0  # not due yet

    receiver.answer_with(None)
    clock.advance(5)
    await drain(worker)
    names = [json.loads(r["body"])["data"]["key"]["name"] for r in receiver.received()]
    assert names == ["one", "two", "three"]


async def test_a_message_still_failing_after_the_retry_window_is_failed_and_the_next_goes(
    actor: Actor,
    key_manager: KeyManager,
    webhooks: WebhookManager,
    worker: WebhookWorker,
    receiver: Receiver,
    clock: Clock,
) -> None:
    await webhooks.create_endpoint(actor, url=receiver.url)
    receiver.answer_with(500)
    await key_manager.create_key(actor, name="first")
    clock.advance(1)
    attempts = 0
    while await Message.filter(status="pending").exists() and attempts < 100:
        attempts += await worker.run_once()
        clock.advance(3600)
    assert 5 < attempts < 60  # backoff grows: hours apart, not seconds
    message = await Message.get()
    assert message.status == "failed"
    last = await WebhookDelivery.all().order_by("-id").first()
    assert last is not None
    assert last.status == "failed"
    assert last.next_retry_at is None

    receiver.answer_with(None)
    await key_manager.create_key(actor, name="second")
    await drain(worker)
    assert [json.loads(r["body"])["data"]["key"]["name"] for r in receiver.received()] == ["second"]


async def test_an_endpoint_failing_for_five_days_is_disabled_with_a_reason(
    actor: Actor,
    key_manager: KeyManager,
    webhooks: WebhookManager,
    insecure_guard: AddressGuard,
    receiver: Receiver,
    clock: Clock,
) -> None:
    worker = WebhookWorker(
        Sender(insecure_guard, timeout=5), clock=clock, policy=RetryPolicy(max_delay=6 * 3600)
    )
    new = await webhooks.create_endpoint(actor, url=receiver.url)
    receiver.answer_with(500)
    for hour in range(0, 24 * 7, 3):
        # Events keep coming (each attempt that fails counts) while the receiver is down.
        await key_manager.create_key(actor, name=f"hour-{hour}")
        await worker.run_once()
        endpoint = await WebhookEndpoint.get(id=new.endpoint.id)
        if not endpoint.enabled:
            break
        clock.advance(3 * 3600)
    assert not endpoint.enabled
    assert endpoint.disabled_reason is not None
    assert "failed for 5 days" in endpoint.disabled_reason
    assert await AuditEvent.filter(action=AuditAction.WEBHOOK_AUTO_DISABLED).count() == 1
    # Nothing more is tried while it is disabled; enabling it again delivers what waited.
    tried = await WebhookDelivery.all().count()
    clock.advance(3600)
    assert await worker.run_once() == 0
    assert await WebhookDelivery.all().count() == tried

    receiver.answer_with(None)
    endpoint = await webhooks.set_enabled(actor, new.endpoint.id, True)
    assert endpoint.disabled_reason is None
    await drain(worker, rounds=50)
    assert receiver.received()


async def test_two_workers_never_deliver_one_message_twice(
    actor: Actor,
    key_manager: KeyManager,
    webhooks: WebhookManager,
    insecure_guard: AddressGuard,
    receiver: Receiver,
    clock: Clock,
) -> None:
    await webhooks.create_endpoint(actor, url=receiver.url)
    await webhooks.create_endpoint(actor, url=receiver.url + "?second")
    for number in range(5):
        await key_manager.create_key(actor, name=f"key-{number}")
    one = WebhookWorker(Sender(insecure_guard), clock=clock)
    two = WebhookWorker(Sender(insecure_guard), clock=clock)
    for _ in range(20):
        done = await asyncio.gather(one.run_once(), two.run_once())
        if not sum(done):
            break
    got = receiver.received()
    assert len(got) == 10
    assert len({r["headers"]["webhook-id"] for r in got}) == 10


async def test_finished_history_older_than_thirty_days_is_pruned_and_pending_stays(
    actor: Actor,
    key_manager: KeyManager,
    webhooks: WebhookManager,
    worker: WebhookWorker,
    receiver: Receiver,
) -> None:
    await webhooks.create_endpoint(actor, url=receiver.url)
    await key_manager.create_key(actor, name="delivered")
    await drain(worker)
    await key_manager.create_key(actor, name="pending")
    now = datetime.now(UTC)
    assert await prune_history(now + timedelta(days=29)) == 0
    assert await prune_history(now + timedelta(days=31)) == 2  # one message, one attempt
    assert await Message.filter(status="pending").count() == 1
