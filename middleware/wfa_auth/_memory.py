"""Dict-backed key and token stores, for tests, examples and single-process tools.

Everything lives in this process and is lost when it exits; use a database-backed store
(``wfa_keys.store`` for the Workflow Automation service) for anything else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from wfa_auth._keyformat import generate_key_id, generate_key_secret
from wfa_auth.base import SecretVerifier, TokenRecord


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

    def __repr__(self) -> str:
        return f"MemoryKeyRecord(key_id={self.key_id!r}, name={self.name!r}, secret_hash='***')"


class MemoryKeyStore:
    """A :class:`~wfa_auth.base.KeyStore` in a dict keyed by Key ID."""

    def __init__(self) -> None:
        self.keys: dict[str, MemoryKeyRecord] = {}
        self.last_used: dict[str, datetime] = {}

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
    ) -> tuple[MemoryKeyRecord, str]:
        """Create a key and return it with its Key Secret, the only time the secret exists."""
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
        )
        self.add(record)
        return record, secret

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

    async def record_usage(self, last_used: Mapping[str, datetime]) -> None:
        """Set ``last_used_at`` for each Key ID that still exists."""
        for key_id, when in last_used.items():
            if key_id in self.keys:
                self.last_used[key_id] = when


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
