"""Key material and password hashing for the service.

Secrets exist in plain text once: :func:`new_key_secret` returns the secret with its hash,
the mutation hands the secret to its caller, and only the hash is kept.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from typing import NamedTuple

from wfa_auth import Argon2Verifier, generate_key_id, generate_key_secret, token_digest
from wfa_keys.settings import Settings

__all__ = [
    "BackgroundArgon2Verifier",
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


#: The niceness of worker threads that have run argon2: the lowest CPU priority there is.
BACKGROUND_NICENESS = 19
_worker = threading.local()


def _run_in_background() -> None:
    """Lower the CPU priority of the current worker thread, once (Linux: per thread).

    argon2 is slow on purpose and runs in worker threads. On a machine with few cores, two
    of them hashing at the normal priority take the CPU from the event loop: a flood of wrong
    secrets (each checked until its throttle is full) or a burst of key creation would make
    every other request wait. At the lowest priority the scheduler runs the event loop first
    and argon2 on what is left. Never applied to the main thread (the event loop's); a
    platform without per-thread priorities keeps the normal one.
    """
    if getattr(_worker, "lowered", False) or threading.current_thread() is threading.main_thread():
        return
    _worker.lowered = True
    # Without per-thread priorities (not Linux), the thread keeps the normal one.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICENESS)


class BackgroundArgon2Verifier(Argon2Verifier):
    """argon2id that runs its hashes at the lowest CPU priority of the worker thread.

    The worker threads that ran argon2 keep that priority; the service runs nothing else
    that is urgent in worker threads (its database drivers have threads of their own).
    """

    def hash(self, secret: str) -> str:
        """A new argon2id hash of ``secret``, computed in the background."""
        _run_in_background()
        return super().hash(secret)

    def verify(self, secret_hash: str, secret: str) -> bool:
        """True when ``secret`` matches ``secret_hash``, computed in the background."""
        _run_in_background()
        return super().verify(secret_hash, secret)


def hasher_for(settings: Settings) -> Argon2Verifier:
    """The argon2id hasher configured by ``settings`` (for secrets and passwords alike)."""
    return BackgroundArgon2Verifier(
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
