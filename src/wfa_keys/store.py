"""The Tortoise-backed key and token stores that plug the service into :mod:`wfa_auth`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from wfa_auth import Quota, RateLimit, TokenRecord, Usage, secret_fingerprint
from wfa_keys.changes import publish_key_change
from wfa_keys.limits import MAX_TOKENS_PER_KEY
from wfa_keys.models import AccessToken, ApiKey, Role
from wfa_keys.webhooks.reminders import note_key_uses

# The length of the ``api_key.last_used_ip`` column: the longest textual IPv6 address.
_MAX_IP = 45

# record_usage's one statement: each key's last use moves forward only (a late flush of an
# older use changes nothing).
_RECORD_USAGE_POSTGRES = """
UPDATE "api_key" SET "last_used_at" = "used"."at", "last_used_ip" = "used"."ip"
FROM unnest($1::text[], $2::timestamptz[], $3::text[]) AS "used"("key_id", "at", "ip")
WHERE "api_key"."key_id" = "used"."key_id"
  AND ("api_key"."last_used_at" IS NULL OR "api_key"."last_used_at" < "used"."at")
"""
# SQLite has no arrays: the rows as VALUES, in chunks well under its 32,766 parameters.
_SQLITE_ROWS = 1000
_RECORD_USAGE_SQLITE = """
WITH "used"("key_id", "at", "ip") AS (VALUES {values})
UPDATE "api_key" SET "last_used_at" = "used"."at", "last_used_ip" = "used"."ip"
FROM "used"
WHERE "api_key"."key_id" = "used"."key_id"
  AND ("api_key"."last_used_at" IS NULL OR "api_key"."last_used_at" < "used"."at")
"""


@dataclass(frozen=True, slots=True)
class TortoiseKeyRecord:
    """A :class:`wfa_auth.KeyRecord` read from the ``api_key`` row, its owner and organization."""

    key_id: str
    name: str
    secret_hash: str
    enabled: bool
    expires_at: datetime | None
    owner_id: str
    owner_email: str
    owner_is_active_admin: bool
    organization_id: str
    organization_name: str
    organization_subscribed: bool
    #: The scopes the key grants, the networks it may be used from (empty: anywhere), and
    #: the hash of the secret before a regeneration with a grace period, while it is valid.
    scopes: tuple[str, ...] = ()
    allowed_cidrs: tuple[str, ...] = ()
    previous_secret_hash: str | None = None
    previous_secret_expires_at: datetime | None = None
    #: The key's rate limit and quota (None: none), enforced by the middleware.
    rate_limit: RateLimit | None = None
    quota: Quota | None = None

    def __repr__(self) -> str:
        # The hash stays out of logs and tracebacks.
        return f"TortoiseKeyRecord(key_id={self.key_id!r}, name={self.name!r}, secret_hash='***')"

    @classmethod
    def from_model(cls, key: ApiKey) -> TortoiseKeyRecord:
        """The record of a key fetched with its owner and organization."""
        owner = key.owner
        organization = key.organization
        return cls(
            key_id=key.key_id,
            name=key.name,
            secret_hash=key.secret_hash,
            enabled=key.enabled,
            expires_at=key.expires_at,
            owner_id=str(owner.id),
            owner_email=owner.email,
            # An admin moved to another organization no longer speaks for this one.
            owner_is_active_admin=(
                owner.is_active
                and owner.role == Role.ADMIN
                and str(owner.organization_id) == str(key.organization_id)
            ),
            organization_id=str(organization.id),
            organization_name=organization.name,
            organization_subscribed=organization.has_workflow_automation,
            scopes=tuple(key.scopes or ()),
            allowed_cidrs=tuple(key.allowed_cidrs or ()),
            previous_secret_hash=key.previous_secret_hash,
            previous_secret_expires_at=key.previous_secret_expires_at,
            rate_limit=rate_limit_of(key),
            quota=quota_of(key),
        )


def rate_limit_of(key: ApiKey) -> RateLimit | None:
    """The key's rate limit from its columns, or None."""
    if key.rate_limit_requests is None or key.rate_limit_per_seconds is None:
        return None
    return RateLimit(requests=key.rate_limit_requests, per_seconds=key.rate_limit_per_seconds)


def quota_of(key: ApiKey) -> Quota | None:
    """The key's quota from its columns, or None."""
    if key.quota_requests is None or key.quota_period is None:
        return None
    return Quota(requests=key.quota_requests, period=key.quota_period)


class TortoiseKeyStore:
    """A :class:`wfa_auth.KeyStore` over the ``api_key`` table: one query per lookup."""

    async def get_key(self, key_id: str) -> TortoiseKeyRecord | None:
        """The key with this Key ID, with its owner and organization, or None."""
        key = await ApiKey.filter(key_id=key_id).select_related("owner", "organization").first()
        return None if key is None else TortoiseKeyRecord.from_model(key)

    async def replace_secret_hash(self, key_id: str, old_hash: str, new_hash: str) -> None:
        """Store a rehashed secret, only if no regenerate replaced the hash meanwhile."""
        async with in_transaction():
            await ApiKey.filter(key_id=key_id, secret_hash=old_hash).update(secret_hash=new_hash)

    async def record_usage(self, last_used: Mapping[str, Usage]) -> None:
        """Move ``last_used_at`` forward for each key, with ``last_used_ip`` (the address of
        that use), in one transaction: a late write of an older use changes neither.

        One statement for every key of the batch (a process's flush carries as many keys as
        were used in ``usage_interval`` seconds: tens of thousands at scale), in Key ID order.
        """
        rows = sorted(
            # An address longer than the column (45, an IPv4-mapped IPv6) is no address.
            (
                key_id,
                usage.at,
                usage.ip if usage.ip is not None and len(usage.ip) <= _MAX_IP else None,
            )
            for key_id, usage in last_used.items()
        )
        if not rows:
            return
        async with in_transaction() as connection:
            if connection.capabilities.dialect == "postgres":
                # Column by column: zip(*rows) makes an iterator a row, and at 50,000 keys
                # they joined the garbage collector's oldest generation by the thousand.
                columns = [[row[n] for row in rows] for n in range(3)]
                await connection.execute_query(_RECORD_USAGE_POSTGRES, columns)
            else:
                for start in range(0, len(rows), _SQLITE_ROWS):
                    chunk = rows[start : start + _SQLITE_ROWS]
                    values = ", ".join(["(?, ?, ?)"] * len(chunk))
                    await connection.execute_query(
                        _RECORD_USAGE_SQLITE.format(values=values),
                        [value for row in chunk for value in row],
                    )
            # New-address alerts (issue 23), in this transaction: the network is
            # remembered if and only if its event (if any) is written.
            await note_key_uses([(key_id, ip, at) for key_id, at, ip in rows])


class TortoiseTokenStore:
    """A :class:`wfa_auth.TokenStore` over the ``access_token`` table (SHA-256 of each token).

    A key has at most :data:`~wfa_keys.limits.MAX_TOKENS_PER_KEY` live tokens: saving one
    more deletes the oldest (the earliest to expire, since every token lives as long) in the
    same transaction, and announces a change of the key on the change feed in it too, so that
    no process keeps accepting an evicted token from its cache. The key's row is locked
    first (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite runs one write transaction at a
    time), so concurrent exchanges for one key never leave more than the cap, whatever the
    number of server processes.
    """

    def __init__(self, *, max_tokens_per_key: int = MAX_TOKENS_PER_KEY) -> None:
        self.max_tokens_per_key = max_tokens_per_key

    async def save_token(
        self, token_hash: str, record: TokenRecord, *, max_per_key: int | None = None
    ) -> None:
        """Store a new token; drop the key's expired ones and the oldest beyond the cap
        (``max_per_key``, which the middleware passes, or this store's own)."""
        async with in_transaction():
            # A write first: on SQLite it takes the write lock before anything is read, so
            # that two processes never deadlock upgrading a read lock (one would fail busy).
            await AccessToken.filter(
                key_id=record.key_id, expires_at__lte=datetime.now(UTC)
            ).delete()
            # Serializes the savers of one key: the count below cannot go stale.
            await ApiKey.filter(key_id=record.key_id).select_for_update().first()
            await AccessToken.create(
                token_hash=token_hash,
                key_id=record.key_id,
                secret_fingerprint=record.secret_fingerprint,
                expires_at=record.expires_at,
            )
            beyond_cap = await (
                AccessToken.filter(key_id=record.key_id)
                .order_by("-expires_at", "-token_hash")
                .offset(self.max_tokens_per_key if max_per_key is None else max_per_key)
                .limit(1_000)
                .values_list("token_hash", flat=True)
            )
            if beyond_cap:
                await AccessToken.filter(token_hash__in=list(beyond_cap)).delete()
                # Every process may hold an evicted token in its cache: the key's change
                # makes each one read its tokens again (refused within the feed's delay).
                await publish_key_change(record.key_id)

    async def get_token(self, token_hash: str) -> TokenRecord | None:
        """The token with this hash, or None."""
        token = await AccessToken.get_or_none(token_hash=token_hash)
        if token is None:
            return None
        return TokenRecord(
            key_id=token.key_id,
            secret_fingerprint=token.secret_fingerprint,
            expires_at=token.expires_at,
        )

    async def delete_token(self, token_hash: str) -> None:
        """Delete a revoked or expired token."""
        async with in_transaction():
            await AccessToken.filter(token_hash=token_hash).delete()

    async def delete_tokens_for_key(self, key_id: str) -> None:
        """Delete every token of a key (revoked: nothing brings them back).

        Runs in the caller's transaction when there is one, so that the tokens go if and
        only if the change that revokes them (disable, regenerate, delete) is committed.
        """
        async with in_transaction():
            await AccessToken.filter(key_id=key_id).delete()

    async def delete_tokens_not_issued_for(self, key_id: str, secret_hash: str) -> None:
        """Delete the key's tokens issued for any secret but the one hashed as ``secret_hash``
        (the end of a grace period); in the caller's transaction, like the above."""
        async with in_transaction():
            await (
                AccessToken.filter(key_id=key_id)
                .exclude(secret_fingerprint=secret_fingerprint(secret_hash))
                .delete()
            )

    async def delete_tokens_for_owner(self, owner_id: object) -> None:
        """Delete the tokens of every key owned by a user (deactivated or no longer admin)."""
        async with in_transaction():
            key_ids = await ApiKey.filter(owner_id=owner_id).values_list("key_id", flat=True)
            if key_ids:
                await AccessToken.filter(key_id__in=list(key_ids)).delete()
