"""Key material and password hashing for the service.

Secrets exist in plain text once: :func:`new_key_secret` returns the secret with its hash,
the mutation hands the secret to its caller, and only the hash is kept.
"""

from __future__ import annotations

import secrets
from typing import NamedTuple

from wfa_auth import Argon2Verifier, generate_key_id, generate_key_secret, token_digest
from wfa_keys.settings import Settings

__all__ = [
    "KeySecret",
    "generate_key_id",
    "hasher_for",
    "new_key_secret",
    "new_session_id",
    "sha256_hex",
]


class KeySecret(NamedTuple):
    """A newly generated Key Secret and its argon2id hash."""

    secret: str
    secret_hash: str

    def __repr__(self) -> str:
        return "KeySecret(secret='***', secret_hash='***')"


def hasher_for(settings: Settings) -> Argon2Verifier:
    """The argon2id hasher configured by ``settings`` (for secrets and passwords alike)."""
    return Argon2Verifier(
        time_cost=settings.argon2_time_cost,
        memory_cost_kib=settings.argon2_memory_cost_kib,
        parallelism=settings.argon2_parallelism,
    )


def new_key_secret(hasher: Argon2Verifier) -> KeySecret:
    """A new Key Secret and its hash, together, so that the plain secret is held once."""
    secret = generate_key_secret()
    return KeySecret(secret, hasher.hash(secret))


def new_session_id() -> str:
    """A random session ID (256 bits); the database keeps only :func:`sha256_hex` of it."""
    return secrets.token_urlsafe(32)


#: SHA-256 of a high-entropy random value: session IDs are stored and looked up by it,
#: as the middleware does with access tokens.
sha256_hex = token_digest
