"""Checking credentials: record lookups, secret verification, caching, throttling, tokens.

The middleware does the ASGI plumbing; this module decides who a request is, or raises
:class:`~wfa_auth.errors.AuthenticationRefused` with the reason.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio
import anyio.to_thread

from wfa_auth import errors
from wfa_auth.base import Cache, KeyRecord, KeyStore, SecretVerifier, TokenRecord, TokenStore
from wfa_auth.errors import AuthenticationRefused, Refusal
from wfa_auth.throttle import FailureLimiter
from wfa_auth.tokens import new_access_token, secret_fingerprint, token_digest
from wfa_auth.usage import UsageRecorder

logger = logging.getLogger("wfa_auth")

# A key changed by key_changed() while a request was checking it is looked up again; if it
# keeps changing, the request is answered 503 rather than checked against a stale record.
_MAX_LOOKUPS = 3


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class Authenticator:
    """Turns presented credentials into the :class:`~wfa_auth.base.KeyRecord` they belong to.

    Records are cached for ``record_cache_ttl`` seconds and dropped by :meth:`key_changed`;
    a verified secret is remembered under an HMAC of (Key ID, stored hash, secret) with a
    key that lives only in this process, so a warm request costs neither argon2 nor a query,
    and the cache never holds anything from which the secret could be recovered.
    """

    def __init__(
        self,
        *,
        store: KeyStore,
        token_store: TokenStore,
        verifier: SecretVerifier,
        cache: Cache,
        dummy_hash: str,
        usage: UsageRecorder,
        key_limiter: FailureLimiter,
        ip_limiter: FailureLimiter,
        token_ttl: int,
        record_cache_ttl: float,
        verified_cache_ttl: float,
        max_concurrent_verifications: int,
        retry_after: int,
        organization_id: str | None,
        validate_key_id: Callable[[str], bool],
        validate_key_secret: Callable[[str], bool],
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.token_store = token_store
        self.verifier = verifier
        self.cache = cache
        self.dummy_hash = dummy_hash
        self.usage = usage
        self.key_limiter = key_limiter
        self.ip_limiter = ip_limiter
        self.token_ttl = token_ttl
        self.record_cache_ttl = record_cache_ttl
        self.verified_cache_ttl = verified_cache_ttl
        self.organization_id = organization_id
        self.validate_key_id = validate_key_id
        self.validate_key_secret = validate_key_secret
        self.clock = clock
        self._limiter = anyio.CapacityLimiter(max_concurrent_verifications)
        self._unavailable = errors.SERVICE_UNAVAILABLE.with_headers(Retry_After=str(retry_after))
        self._hmac_key = secrets.token_bytes(32)
        self._versions: dict[str, int] = {}

    async def key_changed(self, key_id: str) -> None:
        """Drop what is cached for ``key_id``; lookups already running will not re-cache it."""
        self._versions[key_id] = self._versions.get(key_id, 0) + 1
        await self.cache.delete("k:" + key_id)

    async def authenticate_key(self, key_id: str, key_secret: str, client_ip: str) -> KeyRecord:
        """The key for a Key ID and Key Secret, or raise AuthenticationRefused."""
        # A made-up or mistyped secret fails its checksum: refused before any lookup or hash.
        if not (self.validate_key_id(key_id) and self.validate_key_secret(key_secret)):
            self._throttle(key_id, client_ip)
            self._count_failure(key_id, client_ip)
            raise AuthenticationRefused(errors.INVALID_CREDENTIALS)
        self._throttle(key_id, client_ip)
        for _ in range(_MAX_LOOKUPS):
            version = self._versions.get(key_id, 0)
            record = await self._record(key_id, version)
            matched = await self._verify(key_id, record, key_secret)
            if self._versions.get(key_id, 0) == version:
                break
        else:
            raise AuthenticationRefused(self._unavailable)
        if record is None or not matched:
            self._count_failure(key_id, client_ip)
            raise AuthenticationRefused(errors.INVALID_CREDENTIALS)
        self.key_limiter.reset((key_id, client_ip))
        self._check_state(record)
        self.usage.note(key_id)
        return record

    async def authenticate_token(self, token: str, client_ip: str) -> KeyRecord:
        """The key an access token was issued for, or raise AuthenticationRefused."""
        self._throttle(None, client_ip)
        digest = token_digest(token)
        issued = await self._token(digest)
        if issued is None:
            self._count_failure(None, client_ip)
            raise AuthenticationRefused(errors.INVALID_TOKEN)
        if issued.expires_at <= self.clock():
            await self._forget_token(digest)
            raise AuthenticationRefused(errors.TOKEN_EXPIRED)
        for _ in range(_MAX_LOOKUPS):
            version = self._versions.get(issued.key_id, 0)
            record = await self._record(issued.key_id, version)
            if self._versions.get(issued.key_id, 0) == version:
                break
        else:
            raise AuthenticationRefused(self._unavailable)
        # A regenerated secret changes the stored hash, and with it the fingerprint.
        if (
            record is None
            or not self._in_organization(record)
            or not hmac.compare_digest(
                secret_fingerprint(record.secret_hash), issued.secret_fingerprint
            )
        ):
            await self._forget_token(digest)
            raise AuthenticationRefused(errors.INVALID_TOKEN)
        self._check_state(record)
        self.usage.note(record.key_id)
        return record

    async def issue_token(self, record: KeyRecord) -> str:
        """A new access token for ``record``; only its digest is stored."""
        token = new_access_token()
        issued = TokenRecord(
            key_id=record.key_id,
            secret_fingerprint=secret_fingerprint(record.secret_hash),
            expires_at=self.clock() + timedelta(seconds=self.token_ttl),
        )
        try:
            await self.token_store.save_token(token_digest(token), issued)
        except Exception as exc:
            raise self._store_failed("token store", exc) from None
        return token

    def _throttle(self, key_id: str | None, client_ip: str) -> None:
        waits = [self.ip_limiter.retry_after(client_ip)]
        if key_id is not None:
            waits.append(self.key_limiter.retry_after((key_id, client_ip)))
        wait = max((w for w in waits if w is not None), default=None)
        if wait is not None:
            logger.info("throttled failed authentications from %s", client_ip)
            raise AuthenticationRefused(
                errors.TOO_MANY_ATTEMPTS.with_headers(Retry_After=str(wait))
            )

    def _count_failure(self, key_id: str | None, client_ip: str) -> None:
        self.ip_limiter.record_failure(client_ip)
        if key_id is not None:
            self.key_limiter.record_failure((key_id, client_ip))

    async def _record(self, key_id: str, version: int) -> KeyRecord | None:
        cached: KeyRecord | None = await self.cache.get("k:" + key_id)
        if cached is not None:
            return cached
        try:
            record = await self.store.get_key(key_id)
        except Exception as exc:
            raise self._store_failed("key store", exc) from None
        # key_changed() during the lookup means the record may predate the change.
        if record is not None and self._versions.get(key_id, 0) == version:
            await self.cache.set("k:" + key_id, record, self.record_cache_ttl)
        return record

    async def _verify(self, key_id: str, record: KeyRecord | None, secret: str) -> bool:
        if record is None or not self._in_organization(record):
            # Same work as for a real key, so that timing does not tell which Key IDs exist.
            await self._run_verify(self.dummy_hash, secret)
            return False
        marker = "v:" + self._credential_digest(key_id, record.secret_hash, secret)
        if await self.cache.get(marker) is not None:
            return True
        if not await self._run_verify(record.secret_hash, secret):
            return False
        await self.cache.set(marker, True, self.verified_cache_ttl)
        await self._rehash_if_needed(record, secret)
        return True

    async def _run_verify(self, secret_hash: str, secret: str) -> bool:
        try:
            return await anyio.to_thread.run_sync(
                self.verifier.verify, secret_hash, secret, limiter=self._limiter
            )
        except Exception as exc:
            raise self._store_failed("secret verifier", exc) from None

    async def _rehash_if_needed(self, record: KeyRecord, secret: str) -> None:
        if not self.verifier.needs_rehash(record.secret_hash):
            return
        try:
            new_hash = await anyio.to_thread.run_sync(
                self.verifier.hash, secret, limiter=self._limiter
            )
            await self.store.replace_secret_hash(record.key_id, record.secret_hash, new_hash)
        except Exception as exc:
            logger.warning(
                "could not rehash the secret of key %s: %s", record.key_id, type(exc).__name__
            )
            return
        await self.key_changed(record.key_id)

    def _credential_digest(self, key_id: str, secret_hash: str, secret: str) -> str:
        mac = hmac.new(self._hmac_key, digestmod=hashlib.sha256)
        for part in (key_id, secret_hash, secret):
            data = part.encode("utf-8", "surrogatepass")
            mac.update(len(data).to_bytes(4, "big") + data)
        return mac.hexdigest()

    async def _token(self, digest: str) -> TokenRecord | None:
        cached: TokenRecord | None = await self.cache.get("t:" + digest)
        if cached is not None:
            return cached
        try:
            issued = await self.token_store.get_token(digest)
        except Exception as exc:
            raise self._store_failed("token store", exc) from None
        if issued is not None:
            remaining = (issued.expires_at - self.clock()).total_seconds()
            await self.cache.set("t:" + digest, issued, min(self.record_cache_ttl, remaining))
        return issued

    async def _forget_token(self, digest: str) -> None:
        await self.cache.delete("t:" + digest)
        try:
            await self.token_store.delete_token(digest)
        except Exception as exc:
            # The token is refused anyway; the next use will try to delete it again.
            logger.warning("could not delete a revoked token: %s", type(exc).__name__)

    def _in_organization(self, record: KeyRecord) -> bool:
        return self.organization_id is None or record.organization_id == self.organization_id

    def _check_state(self, record: KeyRecord) -> None:
        refusal: Refusal | None = None
        if not record.enabled:
            refusal = errors.KEY_DISABLED
        elif record.expires_at is not None and record.expires_at <= self.clock():
            refusal = errors.KEY_EXPIRED
        elif not record.owner_is_active_admin:
            refusal = errors.KEY_OWNER_INACTIVE
        elif not record.organization_subscribed:
            refusal = errors.SUBSCRIPTION_REQUIRED
        if refusal is not None:
            raise AuthenticationRefused(refusal)

    def _store_failed(self, what: str, exc: Exception) -> AuthenticationRefused:
        # Fail closed. Only the class name is logged: exception texts can carry SQL or data.
        logger.error("%s unavailable (%s): answering 503", what, type(exc).__name__)
        return AuthenticationRefused(self._unavailable)
