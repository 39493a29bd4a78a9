"""Dict-backed key and token stores, for tests, examples and single-process tools.

Everything lives in this process and is lost when it exits; use a database-backed store
(``wfa_keys.store`` for the Workflow Automation service) for anything else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from wfa_auth._keyformat import generate_key_id, generate_key_secret
from wfa_auth.base import Quota, RateLimit, SecretVerifier, TokenRecord, Usage


@dataclass(frozen=True, slots=True)
class MemoryKeyRecord:
    """A :class:`~wfa_auth.base.KeyRecord` as plain data."""

    key_id: str
    name: str
    secret_hash: str
    owner_id: str
    owner_email: str
    organization_id: str
    organization_name: str
    enabled: bool = True
    expires_at: datetime | None = None
    owner_is_active_admin: bool = True
    organization_subscribed: bool = True
    #: No scope by default: pass the ones the key needs (least privilege).
    scopes: tuple[str, ...] = ()
    #: Empty: usable from anywhere.
    allowed_cidrs: tuple[str, ...] = ()
    previous_secret_hash: str | None = None
    previous_secret_expires_at: datetime | None = None
    #: None: no rate limit, no quota.
    rate_limit: RateLimit | None = None
    quota: Quota | None = None

    def __repr__(self) -> str:
        return f"MemoryKeyRecord(key_id={self.key_id!r}, name={self.name!r}, secret_hash='***')"


class MemoryKeyStore:
    """A :class:`~wfa_auth.base.KeyStore` in a dict keyed by Key ID."""

    def __init__(self) -> None:
        self.keys: dict[str, MemoryKeyRecord] = {}
        self.last_used: dict[str, Usage] = {}

    def add(self, record: MemoryKeyRecord) -> None:
        """Store ``record``, replacing any key with the same Key ID."""
        self.keys[record.key_id] = record

    def create_key(
        self,
        verifier: SecretVerifier,
        *,
        name: str,
        owner_email: str,
        organization_name: str,
        owner_id: str | None = None,
        organization_id: str | None = None,
        expires_at: datetime | None = None,
        scopes: Iterable[str] = (),
        allowed_cidrs: Iterable[str] = (),
    ) -> tuple[MemoryKeyRecord, str]:
        """Create a key and return it with its Key Secret, the only time the secret exists.

        ``scopes`` are what the key may do (none by default); ``allowed_cidrs`` the networks
        it may be used from (empty: anywhere). Networks are not checked here: an invalid one
        matches no address, so a mistyped list locks the key out rather than opening it.
        """
        secret = generate_key_secret()
        record = MemoryKeyRecord(
            key_id=generate_key_id(),
            name=name,
            secret_hash=verifier.hash(secret),
            owner_id=owner_id or owner_email,
            owner_email=owner_email,
            organization_id=organization_id or organization_name,
            organization_name=organization_name,
            expires_at=expires_at,
            scopes=tuple(scopes),
            allowed_cidrs=tuple(allowed_cidrs),
        )
        self.add(record)
        return record, secret

    def regenerate(
        self,
        verifier: SecretVerifier,
        key_id: str,
        *,
        grace: timedelta = timedelta(0),
        now: datetime | None = None,
    ) -> tuple[MemoryKeyRecord, str]:
        """Give a key a new Key Secret (same Key ID) and return it with the secret.

        With ``grace`` zero the old secret, and the tokens issued for it, stop working at once;
        otherwise they keep working until ``now + grace`` (clients roll over meanwhile). A
        second regeneration replaces the previous secret: only the one just replaced stays
        valid. Call the middleware's ``key_changed`` afterwards, as after any change.
        """
        if grace < timedelta(0):
            raise ValueError("grace must not be negative")
        record = self.keys[key_id]
        secret = generate_key_secret()
        if grace:
            previous_hash: str | None = record.secret_hash
            previous_expires_at = (now or datetime.now(UTC)) + grace
        else:
            previous_hash, previous_expires_at = None, None
        updated = self.update(
            key_id,
            secret_hash=verifier.hash(secret),
            previous_secret_hash=previous_hash,
            previous_secret_expires_at=previous_expires_at,
        )
        return updated, secret

    def revoke_previous_secret(self, key_id: str) -> MemoryKeyRecord:
        """End a grace period now: only the current secret (and its tokens) works."""
        return self.update(key_id, previous_secret_hash=None, previous_secret_expires_at=None)

    def update(self, key_id: str, **changes: object) -> MemoryKeyRecord:
        """Change fields of a stored key (e.g. ``enabled=False``) and return the new record."""
        record = dataclasses.replace(self.keys[key_id], **changes)  # type: ignore[arg-type]
        self.keys[key_id] = record
        return record

    def remove(self, key_id: str) -> None:
        """Delete a key."""
        self.keys.pop(key_id, None)
        self.last_used.pop(key_id, None)

    async def get_key(self, key_id: str) -> MemoryKeyRecord | None:
        """The key with this Key ID, or None when there is none."""
        return self.keys.get(key_id)

    async def replace_secret_hash(self, key_id: str, old_hash: str, new_hash: str) -> None:
        """Store a rehashed secret, only if the stored hash is still ``old_hash``."""
        record = self.keys.get(key_id)
        if record is not None and record.secret_hash == old_hash:
            self.keys[key_id] = dataclasses.replace(record, secret_hash=new_hash)

    async def record_usage(self, last_used: Mapping[str, Usage]) -> None:
        """Note each key's last use (time and address), if it still exists and is newer."""
        for key_id, usage in last_used.items():
            known = self.last_used.get(key_id)
            if key_id in self.keys and (known is None or known.at < usage.at):
                self.last_used[key_id] = usage


class MemoryTokenStore:
    """A :class:`~wfa_auth.base.TokenStore` in a dict keyed by the token's hash."""

    def __init__(self) -> None:
        self.tokens: dict[str, TokenRecord] = {}

    async def save_token(self, token_hash: str, record: TokenRecord, *, max_per_key: int) -> None:
        """Remember a newly issued token, forgetting the expired ones and the key's oldest
        beyond ``max_per_key``."""
        now = datetime.now(UTC)
        for token in [h for h, r in self.tokens.items() if r.expires_at <= now]:
            del self.tokens[token]
        self.tokens[token_hash] = record
        mine = [(r.expires_at, h) for h, r in self.tokens.items() if r.key_id == record.key_id]
        if len(mine) > max_per_key:
            # dicts keep insertion order and sort is stable: among equal expiries, older first.
            mine.sort(key=lambda pair: pair[0])
            for _, token in mine[: len(mine) - max_per_key]:
                del self.tokens[token]

    async def get_token(self, token_hash: str) -> TokenRecord | None:
        """The token with this hash, or None when unknown."""
        return self.tokens.get(token_hash)

    async def delete_token(self, token_hash: str) -> None:
        """Forget a token."""
        self.tokens.pop(token_hash, None)

    async def delete_tokens_for_key(self, key_id: str) -> None:
        """Forget every token of ``key_id``."""
        for token in [h for h, r in self.tokens.items() if r.key_id == key_id]:
            del self.tokens[token]
