"""Events nobody's click causes: expiry reminders and calls from a new address.

:func:`send_expiry_reminders` (run periodically by every server process) writes
``key.expiring`` once when a key comes within 7 days of its expiry and once within 1 day,
and ``key.expired`` once after it expires (for keys that expired in the last 7 days, so that
a first run does not announce years of old keys). "Once" holds across processes: each
reminder is a row of ``key_reminder`` with a unique (key, kind), inserted in the transaction
that writes the event; a process whose insert finds the row there writes nothing for that key.
The keys are reminded a batch (of up to :data:`_BATCH`) per transaction.

:func:`note_key_use` runs where each key's last use is written
(:meth:`wfa_keys.store.TortoiseKeyStore.record_usage`), in that transaction: a use from a
network (/24 for IPv4, /64 for IPv6) the key was not used from in the last 30 days, by a key
that was used from another network in that time, writes ``key.used_from_new_address``.
Each network's row remembers when it was last seen, so a network causes at most one event
per key in 30 days (and so at most one a day).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import get_connection
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Subquery
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from wfa_keys.models import (
    ApiKey,
    KeyNetwork,
    KeyReminder,
    Organization,
    WebhookEndpoint,
    WebhookMessage,
)
from wfa_keys.webhooks.events import enqueue, key_data, keys_data, outbox_messages

__all__ = [
    "NEW_ADDRESS_WINDOW",
    "network_of",
    "note_key_use",
    "note_key_uses",
    "send_expiry_reminders",
]

#: A network unused by a key for this long counts as new again.
NEW_ADDRESS_WINDOW = timedelta(days=30)
#: (kind, how long before the expiry), most urgent last.
_BEFORE_EXPIRY = (("expiring_7d", timedelta(days=7)), ("expiring_1d", timedelta(days=1)))
_EXPIRED_LOOKBACK = timedelta(days=7)
# note_key_uses: the networks seen again, moved forward in one statement (never backwards).
_SEEN_POSTGRES = """
UPDATE "key_network" SET "last_seen_at" = "seen"."at"
FROM unnest($1::bigint[], $2::timestamptz[]) AS "seen"("id", "at")
WHERE "key_network"."id" = "seen"."id" AND "key_network"."last_seen_at" < "seen"."at"
"""
# The networks of a flush's keys as one row of four columns (see _networks_of).
_NETWORKS_POSTGRES = """
SELECT array_agg("id"), array_agg("key_id"), array_agg("network"), array_agg("last_seen_at")
FROM "key_network" WHERE "key_id" = ANY($1::text[])
"""
_NETWORKS_SQLITE = """
SELECT json_group_array("id"), json_group_array("key_id"), json_group_array("network"),
  json_group_array("last_seen_at")
FROM "key_network" WHERE "key_id" IN (SELECT "value" FROM json_each(?))
"""
_SEEN_SQLITE = """
WITH "seen"("id", "at") AS (VALUES {values})
UPDATE "key_network" SET "last_seen_at" = "seen"."at" FROM "seen"
WHERE "key_network"."id" = "seen"."id" AND "key_network"."last_seen_at" < "seen"."at"
"""
_CHUNK = 1000
#: Reminders claimed (and announced) per transaction.
_BATCH = 500
# The reminders of a batch that are not written yet, written; their Key IDs.
_CLAIM_POSTGRES = """
INSERT INTO "key_reminder" ("key_id", "kind", "created_at")
SELECT "claimed"."key_id", $2, $3 FROM unnest($1::text[]) AS "claimed"("key_id")
ON CONFLICT ("key_id", "kind") DO NOTHING RETURNING "key_id"
"""
_CLAIM_SQLITE = """
INSERT INTO "key_reminder" ("key_id", "kind", "created_at") VALUES {values}
ON CONFLICT ("key_id", "kind") DO NOTHING RETURNING "key_id"
"""


async def send_expiry_reminders(now: datetime | None = None) -> int:
    """Write the expiry reminders due at ``now``; how many were written.

    The due keys are read once per kind (their Key ID, organization and expiry, not whole
    rows), then claimed :data:`_BATCH` at a time, each batch one short transaction: a first
    check over an organization of a million keys (some 23,000 due at once) is a few dozen
    transactions, not five statements a key while requests wait behind them.
    """
    now = now or datetime.now(UTC)
    sent = 0
    for kind, before in _BEFORE_EXPIRY:
        due = ApiKey.filter(expires_at__gt=now, expires_at__lte=now + before)
        if kind == "expiring_7d":
            # A key made with less than a day left gets only the 1-day reminder.
            due = due.filter(expires_at__gt=now + timedelta(days=1))
        sent += await _remind(due, kind, "key.expiring", now)
    expired = ApiKey.filter(expires_at__lte=now, expires_at__gt=now - _EXPIRED_LOOKBACK)
    return sent + await _remind(expired, "expired", "key.expired", now)


async def _remind(due: QuerySet[ApiKey], kind: str, event_type: str, now: datetime) -> int:
    """Claim and announce the reminder ``kind`` of the keys of ``due`` not reminded yet."""
    # In Key ID order: processes checking at once claim (lock) the same keys in the same
    # order, so that one waits for the other instead of both deadlocking.
    keys: list[tuple[str, Any, datetime | None]] = (
        await due.exclude(key_id__in=Subquery(KeyReminder.filter(kind=kind).values("key_id")))
        .order_by("key_id")
        .values_list("key_id", "organization_id", "expires_at")
    )
    sent = 0
    for start in range(0, len(keys), _BATCH):
        sent += await _remind_batch(keys[start : start + _BATCH], kind, event_type, now)
    return sent


async def _remind_batch(
    keys: list[tuple[str, Any, datetime | None]], kind: str, event_type: str, now: datetime
) -> int:
    """Write the reminders of ``keys`` that no other process (or earlier run) wrote, and
    their events, in one transaction; how many this call wrote."""
    async with in_transaction() as connection:
        key_ids = [key_id for key_id, _, _ in keys]
        # "Once" across processes: the unique (key, kind) decides; a row another process
        # inserted first (even uncommitted: the insert waits for it) is left to it. (Not
        # execute_query: Tortoise sends an INSERT there without reading what it returns.)
        if connection.capabilities.dialect == "postgres":
            rows = await connection.execute_query_dict(_CLAIM_POSTGRES, [key_ids, kind, now])
        else:
            values = ", ".join(["(?, ?, ?)"] * len(key_ids))
            rows = await connection.execute_query_dict(
                _CLAIM_SQLITE.format(values=values),
                [value for key_id in key_ids for value in (key_id, kind, now)],
            )
        claimed = {row["key_id"] for row in rows}
        by_organization: dict[Any, list[tuple[str, datetime | None]]] = {}
        for key_id, organization_id, expires_at in keys:
            if key_id in claimed:
                by_organization.setdefault(organization_id, []).append((key_id, expires_at))
        for organization_id, reminded in by_organization.items():
            await _announce(organization_id, reminded, kind, event_type, now)
    return len(claimed)


async def _announce(
    organization_id: Any,
    reminded: list[tuple[str, datetime | None]],
    kind: str,
    event_type: str,
    now: datetime,
) -> None:
    """The events of an organization's reminders, as :func:`enqueue` writes one (one
    message per listening endpoint), in a few statements for the whole batch."""
    endpoints = await WebhookEndpoint.filter(organization_id=organization_id, enabled=True)
    targets = [e for e in endpoints if not e.events or event_type in e.events]
    if not targets:
        return
    names = await Organization.filter(id=organization_id).values_list("name", flat=True)
    organization = (
        {"id": str(organization_id), "name": names[0]} if names else {"id": str(organization_id)}
    )
    data_of = await keys_data([key_id for key_id, _ in reminded])
    messages: list[WebhookMessage] = []
    for key_id, expires_at in reminded:
        data: dict[str, Any] = {"organization": organization, "key": data_of[key_id]}
        if expires_at is not None and event_type == "key.expiring":
            left = expires_at - now
            data["expiresInHours"] = max(0, int(left.total_seconds() // 3600))
            data["reminder"] = kind.removeprefix("expiring_")
        messages.extend(outbox_messages(targets, event_type, data, now))
    await WebhookMessage.bulk_create(messages, batch_size=_BATCH)


@functools.lru_cache(maxsize=4096)
def network_of(address: str) -> str | None:
    """The /24 (IPv4) or /64 (IPv6) an address belongs to; None for no address.

    Remembered for the last 4,096 addresses: a flush of uses asks for tens of thousands of
    keys' addresses, most of them shared (a service's egress, a NAT), and ``ipaddress``
    costs some 10 microseconds an address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


async def note_key_use(key_id: str, address: str | None, at: datetime) -> bool:
    """Remember the network of a use; True when it wrote a new-address event. Runs in the
    caller's transaction."""
    network = network_of(address) if address else None
    if network is None:
        return False
    since = at - NEW_ADDRESS_WINDOW
    known = await KeyNetwork.filter(key_id=key_id, network=network).first()
    if known is not None:
        # Conditional, so that of several processes noting a stale network one decides.
        new = bool(
            await KeyNetwork.filter(id=known.id, last_seen_at__lt=since).update(last_seen_at=at)
        )
        if not new:
            await KeyNetwork.filter(id=known.id, last_seen_at__lt=at).update(last_seen_at=at)
    else:
        try:
            async with in_transaction():  # a savepoint: a racing insert must not abort ours
                await KeyNetwork.create(key_id=key_id, network=network, last_seen_at=at)
        except IntegrityError:
            return False  # another process noted it (and decided) first
        new = True
    if not new:
        return False
    others = (
        await KeyNetwork.filter(key_id=key_id, last_seen_at__gte=since)
        .exclude(network=network)
        .exists()
    )
    if not others:
        return False  # the key's first network (or first in 30 days): nothing to compare
    rows = await ApiKey.filter(key_id=key_id).values("organization_id")
    if not rows:
        return False
    data = {"key": await key_data(key_id), "address": address, "network": network}
    return bool(
        await enqueue(rows[0]["organization_id"], "key.used_from_new_address", data, now=at)
    )


#: The columns of :func:`_networks_of`: ID, Key ID, network, last seen.
_Networks = tuple[Sequence[int], Sequence[str], Sequence[str], Sequence[datetime]]


async def _networks_of(connection: BaseDBAsyncClient, key_ids: Sequence[str]) -> _Networks:
    """The networks remembered for ``key_ids``, as columns: IDs, Key IDs, networks, last seen.

    One statement for the whole flush, answered in one row of four arrays: a last-use flush
    of 50,000 keys took 0.72 s of the process's CPU with Tortoise's IN of a thousand values a
    statement, 0.49 s in one; and a row a network (asyncpg's records, SQLite's rows), alive
    across the statement, joined the garbage collector's oldest generation, whose full
    collections over every warm key's objects then came every few seconds."""
    if connection.capabilities.dialect == "postgres":
        _, rows = await connection.execute_query(_NETWORKS_POSTGRES, [key_ids])
        ids, keys, networks, seen = rows[0]
        if ids is None:  # no row: array_agg of nothing is NULL
            return [], [], [], []
        return ids, keys, networks, seen
    _, rows = await connection.execute_query(_NETWORKS_SQLITE, [orjson.dumps(key_ids).decode()])
    ids, keys, networks, seen = (orjson.loads(column) for column in rows[0])
    # SQLite's text, read as Tortoise reads the column.
    column = KeyNetwork._meta.fields_map["last_seen_at"]
    return ids, keys, networks, [column.to_python_value(text) for text in seen]


#: A key's most recently seen network, when, and when the most recent of its others was.
_Newest = tuple[datetime, str, datetime | None]


def _newer(newest: _Newest | None, network: str, seen: datetime) -> _Newest:
    """``newest`` with one more of the key's networks, ``network`` last seen at ``seen``."""
    if newest is None:
        return seen, network, None
    latest, latest_network, other = newest
    if seen > latest:
        return seen, network, latest
    return latest, latest_network, seen if other is None or seen > other else other


async def note_key_uses(uses: Sequence[tuple[str, str | None, datetime]]) -> None:
    """:func:`note_key_use` for each (Key ID, address, time) of a flush of uses, in the
    caller's transaction, in a few statements for the whole flush (on SQLite, a thousand
    keys a statement) where no event can follow: a network the key was seen from within
    :data:`NEW_ADDRESS_WINDOW` (moved forward), and the only network of a key seen from no
    other in that time (remembered: there is nothing to compare it with). Only a network new
    to a key that was used from another goes through :func:`note_key_use`, one by one.

    No object is made a key that lives across a statement, but tuples, which the garbage
    collector stops tracking (see :func:`_networks_of`)."""
    noted = []
    for key_id, address, at in uses:
        network = network_of(address) if address else None
        if network is not None:
            noted.append((key_id, network, address, at))
    connection = get_connection("default")
    ids, key_ids, networks, seens = await _networks_of(connection, [use[0] for use in noted])
    remembered: dict[tuple[str, str], tuple[int, datetime]] = {}
    newest: dict[str, _Newest] = {}
    for id_, key_id, network, seen in zip(ids, key_ids, networks, seens, strict=True):
        remembered[key_id, network] = (id_, seen)
        newest[key_id] = _newer(newest.get(key_id), network, seen)
    seen_again: list[tuple[int, datetime]] = []
    first: list[KeyNetwork] = []
    for key_id, network, address, at in noted:
        since = at - NEW_ADDRESS_WINDOW
        found = remembered.get((key_id, network))
        latest = newest.get(key_id)
        # Seen from another network since: the latest of them all, or of the others.
        other = None if latest is None else latest[0] if latest[1] != network else latest[2]
        others = other is not None and other >= since
        if found is not None and (found[1] >= since or not others):
            if found[1] < at:
                seen_again.append((found[0], at))
        elif found is None and not others:
            first.append(KeyNetwork(key_id=key_id, network=network, last_seen_at=at))
        else:
            await note_key_use(key_id, address, at)
    if first:
        # A row another process added meanwhile stays as it is (it noted the same use).
        await KeyNetwork.bulk_create(first, batch_size=_CHUNK, ignore_conflicts=True)
    if not seen_again:
        return
    if connection.capabilities.dialect == "postgres":
        # Column by column: zip(*rows) makes an iterator a row.
        columns = [[row[0] for row in seen_again], [row[1] for row in seen_again]]
        await connection.execute_query(_SEEN_POSTGRES, columns)
        return
    for start in range(0, len(seen_again), _CHUNK):
        rows = seen_again[start : start + _CHUNK]
        values = ", ".join(["(?, ?)"] * len(rows))
        await connection.execute_query(
            _SEEN_SQLITE.format(values=values), [value for row in rows for value in row]
        )
