"""The outbox: messages are written in the transaction of the change, for the endpoints that
listen, and never hold a secret."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from wfa_keys import keys
from wfa_keys.inactivity import disable_inactive_keys
from wfa_keys.keys import Actor, KeyManager
from wfa_keys.models import ApiKey, Organization
from wfa_keys.models import WebhookMessage as Message
from wfa_keys.webhooks.endpoints import WebhookManager

URL = "https://93.184.216.34/hook"


async def types() -> list[str]:
    return [str(t) for t in await Message.all().order_by("id").values_list("event_type", flat=True)]


async def test_without_an_endpoint_no_message_is_written(
    actor: Actor, key_manager: KeyManager
) -> None:
    await key_manager.create_key(actor, name="quiet")
    assert await Message.all().count() == 0


async def test_each_endpoint_gets_only_the_events_it_listens_to(
    actor: Actor, key_manager: KeyManager, webhooks: WebhookManager
) -> None:
    await webhooks.create_endpoint(actor, url=URL, events=["key.disabled"])
    await webhooks.create_endpoint(actor, url=URL + "/all")
    off = await webhooks.create_endpoint(actor, url=URL + "/off")
    await webhooks.set_enabled(actor, off.endpoint.id, False)
    key = await key_manager.create_key(actor, name="k")
    await key_manager.set_key_enabled(actor, key.key.key_id, False)
    assert sorted(await types()) == ["key.created", "key.disabled", "key.disabled"]


async def test_a_change_rolled_back_leaves_no_message(
    actor: Actor,
    key_manager: KeyManager,
    webhooks: WebhookManager,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await webhooks.create_endpoint(actor, url=URL)
    key = await key_manager.create_key(actor, name="k")

    async def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the change feed is gone")

    # After the audit event (and its message) are written, inside the same transaction.
    monkeypatch.setattr(keys, "publish_key_change", fail)
    with pytest.raises(RuntimeError):
        await key_manager.set_key_enabled(actor, key.key.key_id, False)
    assert await types() == ["key.created"]
    assert (await ApiKey.get(key_id=key.key.key_id)).enabled


async def test_the_inactivity_check_announces_key_auto_disabled(
    actor: Actor, key_manager: KeyManager, webhooks: WebhookManager
) -> None:
    await webhooks.create_endpoint(actor, url=URL, events=["key.auto_disabled"])
    key = await key_manager.create_key(actor, name="idle")
    await Organization.filter(id=actor.organization_id).update(key_inactivity_days=30)
    assert await disable_inactive_keys(now=datetime.now(UTC) + timedelta(days=31)) == [
        key.key.key_id
    ]
    [body] = await Message.all().values_list("body", flat=True)
    payload = json.loads(str(body))
    assert payload["type"] == "key.auto_disabled"
    assert payload["data"]["key"]["id"] == key.key.key_id
    assert payload["data"]["detail"] == {"inactivityDays": 30}
    assert payload["data"]["key"]["enabled"] is False
    assert key.key_secret not in str(body)


async def test_a_sweep_in_batches_writes_each_keys_message_for_each_listening_endpoint(
    actor: Actor, key_manager: KeyManager, webhooks: WebhookManager
) -> None:
    await webhooks.create_endpoint(actor, url=URL, events=["key.auto_disabled"])
    await webhooks.create_endpoint(actor, url=URL + "/all")
    await webhooks.create_endpoint(actor, url=URL + "/other", events=["key.created"])
    idle = [(await key_manager.create_key(actor, name=f"idle {n}")).key.key_id for n in range(5)]
    await Message.all().delete()  # the key.created messages
    await Organization.filter(id=actor.organization_id).update(key_inactivity_days=30)

    disabled = await disable_inactive_keys(now=datetime.now(UTC) + timedelta(days=31), batch_size=2)

    assert sorted(disabled) == sorted(idle)
    bodies = [json.loads(str(b)) for b in await Message.all().values_list("body", flat=True)]
    assert len(bodies) == 2 * len(idle)  # two endpoints listen, the third does not
    assert sorted(b["data"]["key"]["id"] for b in bodies) == sorted(idle * 2)
    for body in bodies:
        assert body["type"] == "key.auto_disabled"
        assert body["data"]["organization"]["id"] == str(actor.organization_id)
        assert body["data"]["key"]["enabled"] is False
        assert body["data"]["detail"] == {"inactivityDays": 30}
        assert "actor" not in body["data"]
