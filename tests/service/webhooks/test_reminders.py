"""Expiry reminders and new-address alerts, with an injected clock and real outbox rows."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tortoise.connection import get_connection

from service.conftest import UserFactory
from support.gql import OTHER_ORGANIZATION
from support.statements import sent_statements
from wfa_auth import Usage
from wfa_keys.keys import Actor, KeyManager
from wfa_keys.models import KeyNetwork
from wfa_keys.models import WebhookMessage as Message
from wfa_keys.store import TortoiseKeyStore
from wfa_keys.webhooks import reminders
from wfa_keys.webhooks.endpoints import WebhookManager
from wfa_keys.webhooks.reminders import network_of, send_expiry_reminders

URL = "https://93.184.216.34/hook"


async def payloads(event_type: str) -> list[dict[str, Any]]:
    bodies = (
        await Message.filter(event_type=event_type).order_by("id").values_list("body", flat=True)
    )
    return [json.loads(str(body)) for body in bodies]


async def test_expiry_reminders_fire_once_at_seven_days_and_once_at_one_day(
    actor: Actor, key_manager: KeyManager, webhooks: WebhookManager
) -> None:
    await webhooks.create_endpoint(actor, url=URL, events=["key.expiring", "key.expired"])
    new = await key_manager.create_key(actor, name="expiring", lifetime_days=30)
    expires = new.key.expires_at
    assert expires is not None

    async def at(before: timedelta) -> int:
        return await send_expiry_reminders(now=expires - before)

    assert await at(timedelta(days=8)) == 0
    assert await at(timedelta(days=7) - timedelta(minutes=1)) == 1
    assert await at(timedelta(days=6)) == 0
    assert await at(timedelta(days=2)) == 0
    assert await at(timedelta(hours=23)) == 1
    assert await at(timedelta(hours=1)) == 0
    reminders = await payloads("key.expiring")
    assert [r["data"]["reminder"] for r in reminders] == ["7d", "1d"]
    assert [r["data"]["expiresInHours"] for r in reminders] == [7 * 24 - 1, 23]
    assert {r["data"]["key"]["id"] for r in reminders} == {new.key.key_id}

    assert await at(-timedelta(minutes=1)) == 1
    assert await at(-timedelta(days=1)) == 0
    [expired] = await payloads("key.expired")
    assert expired["data"]["key"]["name"] == "expiring"


async def test_processes_checking_at_once_send_each_reminder_once(
    actor: Actor, key_manager: KeyManager, webhooks: WebhookManager
) -> None:
    await webhooks.create_endpoint(actor, url=URL)
    new = await key_manager.create_key(actor, name="expiring", lifetime_days=5)
    assert new.key.expires_at is not None
    now = new.key.expires_at - timedelta(days=3)
    sent = await asyncio.gather(*(send_expiry_reminders(now=now) for _ in range(4)))
    assert sum(sent) == 1
    assert len(await payloads("key.expiring")) == 1


async def test_processes_checking_many_keys_at_once_send_each_reminder_once(
    actor: Actor, key_manager: KeyManager, webhooks: WebhookManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    await webhooks.create_endpoint(actor, url=URL)
    keys = [
        (await key_manager.create_key(actor, name=f"k{n}", lifetime_days=5)).key for n in range(7)
    ]
    assert keys[0].expires_at is not None
    monkeypatch.setattr(reminders, "_BATCH", 2)
    now = keys[0].expires_at - timedelta(days=3)
    sent = await asyncio.gather(*(send_expiry_reminders(now=now) for _ in range(4)))
    assert sum(sent) == 7
    reminded = [r["data"]["key"]["id"] for r in await payloads("key.expiring")]
    assert sorted(reminded) == sorted(key.key_id for key in keys)


async def test_a_key_that_expires_within_a_day_gets_only_the_one_day_reminder(
    actor: Actor, key_manager: KeyManager, webhooks: WebhookManager
) -> None:
    await webhooks.create_endpoint(actor, url=URL)
    new = await key_manager.create_key(actor, name="short", lifetime_days=1)
    assert await send_expiry_reminders() == 1
    assert [r["data"]["reminder"] for r in await payloads("key.expiring")] == ["1d"]
    assert new.key.key_id


async def test_many_due_keys_are_reminded_a_batch_per_transaction_each_once(
    actor: Actor,
    key_manager: KeyManager,
    webhooks: WebhookManager,
    make_user: UserFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await webhooks.create_endpoint(actor, url=URL, events=["key.expiring"])
    listened = [
        (await key_manager.create_key(actor, name=f"k{n}", lifetime_days=5)).key for n in range(5)
    ]
    other = await make_user("admin@globex.example", organization=OTHER_ORGANIZATION)
    await other.fetch_related("organization")
    unheard = await key_manager.create_key(
        Actor(other, client_ip="127.0.0.1"), name="other", lifetime_days=5
    )
    assert unheard.key.expires_at is not None
    now = unheard.key.expires_at - timedelta(days=3)
    monkeypatch.setattr(reminders, "_BATCH", 2)
    claims: list[str] = []
    connection = get_connection("default")
    execute = type(connection).execute_query_dict

    async def counting(self: Any, sql: str, values: Any = None) -> Any:
        if "key_reminder" in sql and sql.lstrip().startswith("INSERT"):
            claims.append(sql)
        return await execute(self, sql, values)

    monkeypatch.setattr(type(connection), "execute_query_dict", counting)
    assert await send_expiry_reminders(now=now) == 6
    assert len(claims) == 3  # six keys, two a batch
    assert await send_expiry_reminders(now=now) == 0
    monkeypatch.undo()

    sent = await payloads("key.expiring")
    assert sorted(r["data"]["key"]["id"] for r in sent) == sorted(k.key_id for k in listened)
    assert {r["data"]["reminder"] for r in sent} == {"7d"}
    assert {r["data"]["expiresInHours"] for r in sent} == {3 * 24 - 1}
    assert {r["data"]["organization"]["name"] for r in sent} == {"Acme"}


def test_addresses_are_grouped_by_slash_24_and_slash_64() -> None:
    assert network_of("203.0.113.77") == "203.0.113.0/24"
    assert network_of("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert network_of("::ffff:203.0.113.9") == "203.0.113.0/24"
    assert network_of("not an address") is None


@pytest.mark.parametrize(
    "rows",
    [*itertools.permutations([("a", 3), ("b", 1), ("c", 2)]), [("a", 2), ("b", 2)], [("a", 5)]],
)
def test_a_keys_newest_network_and_newest_other_in_any_order(rows: list[tuple[str, int]]) -> None:
    """A flush reads its keys' networks in no particular order, and keeps per key only the
    newest network and when the newest other was seen: whether a use is from a network
    new while another is live depends on them."""
    day = datetime(2030, 1, 1, tzinfo=UTC)
    newest = None
    for network, days in rows:
        newest = reminders._newer(newest, network, day + timedelta(days=days))
    latest = max(days for _, days in rows)
    assert newest is not None
    assert newest[0] == day + timedelta(days=latest)
    assert dict(rows)[newest[1]] == latest
    others = [days for network, days in rows if network != newest[1]]
    assert newest[2] == (day + timedelta(days=max(others)) if others else None)


async def test_a_use_from_a_new_network_is_announced_once_per_network(
    actor: Actor, key_manager: KeyManager, webhooks: WebhookManager
) -> None:
    await webhooks.create_endpoint(actor, url=URL, events=["key.used_from_new_address"])
    key_id = (await key_manager.create_key(actor, name="ci")).key.key_id
    store = TortoiseKeyStore()
    start = datetime.now(UTC)

    async def use(ip: str, after: timedelta) -> None:
        await store.record_usage({key_id: Usage(at=start + after, ip=ip)})

    await use("198.51.100.10", timedelta(0))  # the first network: nothing to compare with
    await use("198.51.100.99", timedelta(minutes=1))  # same /24
    assert await payloads("key.used_from_new_address") == []
    await use("203.0.113.5", timedelta(minutes=2))  # a new /24
    await use("203.0.113.6", timedelta(minutes=3))
    await use("203.0.113.7", timedelta(hours=20))
    [alert] = await payloads("key.used_from_new_address")
    assert alert["data"]["address"] == "203.0.113.5"
    assert alert["data"]["network"] == "203.0.113.0/24"
    assert alert["data"]["key"]["id"] == key_id
    # Unused for more than 30 days, a network is new again (the key kept being used elsewhere).
    await use("203.0.113.8", timedelta(days=30))
    assert len(await payloads("key.used_from_new_address")) == 1
    await use("198.51.100.10", timedelta(days=31))
    assert len(await payloads("key.used_from_new_address")) == 2


async def test_a_flush_of_keys_first_seen_or_seen_again_from_their_network_is_two_statements(
    actor: Actor, key_manager: KeyManager, webhooks: WebhookManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    await webhooks.create_endpoint(actor, url=URL, events=["key.used_from_new_address"])
    keys = [(await key_manager.create_key(actor, name=f"k{n}")).key.key_id for n in range(5)]
    store = TortoiseKeyStore()
    start = datetime.now(UTC)
    sent = sent_statements(monkeypatch)

    def statements() -> list[str]:
        return [sql for sql in sent if "key_network" in sql]

    # Each key's first network: remembered, nothing to compare it with.
    await store.record_usage({key_id: Usage(at=start, ip="198.51.100.10") for key_id in keys})
    assert len(statements()) <= 2  # one read, one insert, for the whole flush
    assert await KeyNetwork.filter(key_id__in=keys).count() == len(keys)
    sent.clear()
    later = {key_id: start + timedelta(minutes=n + 1) for n, key_id in enumerate(keys)}
    await store.record_usage(
        {key_id: Usage(at=at, ip="198.51.100.11") for key_id, at in later.items()}
    )
    assert len(statements()) == 2  # one read, one update
    monkeypatch.undo()

    seen = dict(await KeyNetwork.filter(key_id__in=keys).values_list("key_id", "last_seen_at"))
    assert seen == later
    assert await payloads("key.used_from_new_address") == []
    # A key seen from another network since is announced as before.
    await store.record_usage({keys[0]: Usage(at=start + timedelta(hours=1), ip="203.0.113.5")})
    [alert] = await payloads("key.used_from_new_address")
    assert alert["data"]["key"]["id"] == keys[0]
