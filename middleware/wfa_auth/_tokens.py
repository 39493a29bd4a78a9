"""Access tokens from the token endpoint: random, stored and cached only as digests."""

from __future__ import annotations

import hashlib
import secrets


def new_access_token() -> str:
    """A random access token (256 bits); only :func:`token_digest` of it is ever kept."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """SHA-256 of a token. Tokens are random, so a fast hash is enough to store and look up."""
    return hashlib.sha256(token.encode()).hexdigest()


def secret_fingerprint(secret_hash: str) -> str:
    """A digest of a key's stored secret hash, kept with each token it issued.

    Regenerating the Key Secret changes the hash and so the fingerprint: every token obtained
    with the old secret stops matching. It is not keyed by a per-process secret so that every
    worker of a service accepts the tokens any of them issued.
    """
    return hashlib.sha256(b"wfa_auth.secret-fingerprint\x00" + secret_hash.encode()).hexdigest()
