"""The default :class:`~wfa_auth.base.SecretVerifier`: argon2id through argon2-cffi."""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError


class Argon2Verifier:
    """Hashes and verifies secrets with argon2id.

    The defaults are OWASP's minimum (19 MiB, 2 passes, 1 lane). A Key Secret carries about
    190 random bits, so the hash does not have to slow down guessing; argon2id is used so
    that one scheme serves both secrets and passwords and a leaked table stays expensive.
    """

    def __init__(
        self, *, time_cost: int = 2, memory_cost_kib: int = 19456, parallelism: int = 1
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost_kib,
            parallelism=parallelism,
            type=Type.ID,
        )
        self._dummy_hash: str | None = None

    @property
    def dummy_hash(self) -> str:
        """A hash of no real secret, verified against when a Key ID is unknown, so that the
        answer takes as long as for a real key; made on first use with these parameters."""
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash("wfa-auth-dummy-secret")
        return self._dummy_hash

    def hash(self, secret: str) -> str:
        """A new argon2id hash of ``secret`` with a random salt."""
        return self._hasher.hash(secret)

    def verify(self, secret_hash: str, secret: str) -> bool:
        """True when ``secret`` matches ``secret_hash``; never raises for a bad hash."""
        try:
            return self._hasher.verify(secret_hash, secret)
        # InvalidHashError is not a VerificationError: a corrupt stored hash is a refusal too.
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, secret_hash: str) -> bool:
        """True when the stored hash was made with other parameters than these."""
        try:
            return self._hasher.check_needs_rehash(secret_hash)
        except InvalidHashError:
            return True
