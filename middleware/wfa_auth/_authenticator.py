"""Checking credentials: record lookups, secret verification, caching, throttling, tokens.

The middleware does the ASGI plumbing; this module decides who a request is, or raises
:class:`~wfa_auth.errors.AuthenticationRefused` with the reason.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.to_thread

from wfa_auth import _errors as errors
from wfa_auth._attempts import Attempt, AttemptThrottle, Throttled, ThrottleUnavailable
from wfa_auth._cache import TTLCache
from wfa_auth._config import Caching, Throttling, Tokens
from wfa_auth._errors import AuthenticationRefused, Refusal
from wfa_auth._keyformat import is_valid_key_id, is_valid_key_secret
from wfa_auth._networks import AllowList, AllowLists
from wfa_auth._principal import ApiKeyUser
from wfa_auth._throttle import MemoryThrottleStore
from wfa_auth._tokens import new_access_token, secret_fingerprint, token_digest
from wfa_auth._usage import UsageRecorder
from wfa_auth.base import (
    AuthObserver,
    BearerCredentials,
    Cache,
    Credentials,
    KeyRecord,
    KeyStore,
    SecretVerifier,
    TokenRecord,
    TokenStore,
)

logger = logging.getLogger("wfa_auth")

# A key changed by key_changed() while a request was checking it is looked up again; if it
# keeps changing, the request is answered 503 rather than checked against a stale record.
_MAX_LOOKUPS = 3

#: A checked credential: the key record, its version in this process, until when (monotonic
#: seconds) the check holds without looking again, and the secret hash it matched (the
#: previous one during a grace period).
Checked = tuple[KeyRecord, int, float, str]
#: A warm memo entry: who verified credentials belong to, the key's version when they were
#: checked, until when the check holds, and the key's allow-list (None: any address).
Warm = tuple[ApiKeyUser, int, float, AllowList | None]


def client_host(client: Any) -> str:
    """The client's IP address from a scope's ``client`` entry, or ``"unknown"``."""
    return str(client[0]) if client else "unknown"


def _timed(verify: Callable[[str, str], bool], secret_hash: str, secret: str) -> tuple[bool, float]:
    """``verify`` and how long it took, timed in the worker thread (queueing excluded)."""
    started = time.perf_counter()
    matched = verify(secret_hash, secret)
    return matched, time.perf_counter() - started


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class Authenticator:
    """Turns presented credentials into the :class:`~wfa_auth.base.KeyRecord` they belong to.

    Records are cached for ``caching.record_ttl`` seconds and dropped by :meth:`key_changed`;
    a verified secret is remembered under an HMAC of (Key ID, stored hash, secret) with a
    key that lives only in this process, so a warm request costs neither argon2 nor a query,
    and the cache never holds anything from which the secret could be recovered.

    On top of that, a small in-process memo maps a keyed BLAKE2s digest of the presented
    credentials (a MAC with another process-random key) to the
    record they were checked against. It is what makes a warm request cheap, and it never
    outlives the check: an entry is used only while the key's version is unchanged (see
    :meth:`key_changed`), the record it came from is younger than ``record_ttl`` and
    neither the key nor the token has expired (nor, for a previous secret or a token issued
    for it, the grace period). An entry also keeps the key's parsed allow-list, so a warm
    request from another address is checked against it too.

    Memory is bounded by ``caching.max_warm_entries``: the memo holds one entry per verified
    credential (under its Authorization header when it came in one, else under the
    credentials), least recently used first out; the verified-secret markers live in a cache
    of their own of that size, so that records and tokens never push them out (which would
    cost argon2 again); and the per-key versions are reset (every cached record checked
    again) rather than grow beyond that size.
    """

    def __init__(
        self,
        *,
        store: KeyStore,
        token_store: TokenStore,
        verifier: SecretVerifier,
        cache: Cache,
        usage: UsageRecorder,
        tokens: Tokens,
        caching: Caching,
        throttling: Throttling,
        observer: AuthObserver | None,
        organization_id: str | None,
        clock: Callable[[], datetime],
        scopes: Sequence[str] = ("authenticated",),
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.token_store = token_store
        self.verifier = verifier
        self.cache = cache
        self.usage = usage
        self.tokens = tokens
        self.record_ttl = caching.record_ttl
        self.verified_ttl = caching.verified_ttl
        self.observer = observer
        self.organization_id = organization_id
        self.clock = clock
        self.timer = timer
        self.scopes = tuple(scopes)
        self._allow_lists = AllowLists()
        self.throttle = AttemptThrottle(
            throttling,
            throttling.store if throttling.store is not None else MemoryThrottleStore(),
            timer,
        )
        self._warm: OrderedDict[bytes, Warm] = OrderedDict()
        self._max_warm = caching.max_warm_entries
        # In this process only: a marker is an HMAC under this process's key, of no use to
        # another process, so it never goes to a shared cache.
        self._verified = TTLCache(max_entries=caching.max_warm_entries, clock=timer)
        self._limiter = anyio.CapacityLimiter(caching.max_concurrent_verifications)
        self._unavailable = errors.SERVICE_UNAVAILABLE.with_headers(
            Retry_After=str(throttling.retry_after_unavailable)
        )
        self._hmac_key = secrets.token_bytes(32)
        memo_key = secrets.token_bytes(32)

        def memo_mac(prefix: bytes) -> hashlib.blake2s:
            mac = hashlib.blake2s(key=memo_key, digest_size=16)
            mac.update(prefix)
            return mac

        # The keyed state with each kind's prefix already in it, so that a request only adds
        # its own bytes: "t" for a token, "k" for a Key ID and secret, "h" for a whole
        # Authorization header as received (see header_memo).
        self._token_mac, self._key_mac = memo_mac(b"t"), memo_mac(b"k")
        self._header_mac = memo_mac(b"h")
        # Versions come from one counter, so that a change to one key and a change to every
        # key (all_keys_changed) both make the key's version larger than any cached one.
        self._counter = 0
        self._versions: dict[str, int] = {}
        self._floor = 0

    def _version(self, key_id: str) -> int:
        return max(self._versions.get(key_id, 0), self._floor)

    async def key_changed(self, key_id: str) -> None:
        """Drop what is cached for ``key_id``; lookups already running will not re-cache it."""
        self._counter += 1
        if len(self._versions) >= self._max_warm:
            # Bounded: forgetting every version at once leaves everything cached before this
            # moment stale (older than the floor), which is safe, only slower for a moment.
            self._floor = self._counter - 1
            self._versions.clear()
        self._versions[key_id] = self._counter
        await self.cache.delete("k:" + key_id)

    def all_keys_changed(self) -> None:
        """Treat every cached record, token and warm request as stale (checked again)."""
        self._counter += 1
        self._floor = self._counter
        self._versions.clear()
        self._warm.clear()

    def set_record_cache_ttl(self, seconds: float) -> None:
        """How long a record read from the store is trusted from now on (new reads)."""
        if not seconds > 0:
            raise ValueError("seconds must be positive")
        self.record_ttl = seconds

    def header_memo(self, raw: bytes) -> bytes:
        """The warm memo's key for the credentials of an Authorization header ``raw``, as
        received: a warm request is found without parsing its header (see :meth:`warm`)."""
        mac = self._header_mac.copy()
        mac.update(raw)
        return mac.digest()

    def warm(self, memo: bytes, client: Any) -> ApiKeyUser | None:
        """Who the credentials under ``memo`` belong to, if they were verified in this process
        and nothing changed since; None when they must be checked (:meth:`authenticate`).
        Raises AuthenticationRefused when the key's allow-list refuses ``client``."""
        warm = self._warm.get(memo)
        if warm is None:
            return None
        user, version, valid_until, allow_list = warm
        now = self.timer()
        # self._version(key_id), inlined: this is the hot path of every warm request.
        current = self._versions.get(user.key.key_id, 0)
        if current < self._floor:
            current = self._floor
        if valid_until > now and current == version:
            self._warm.move_to_end(memo)  # least recently used goes first
            # Verified from one address says nothing of another: checked on every request.
            if allow_list is not None and not allow_list.allows(client):
                raise AuthenticationRefused(errors.IP_NOT_ALLOWED, user.key)
            self.usage.note(user.key.key_id, now, client[0] if client else None)
            if self.observer is not None:
                self.observer.on_authenticated(warm=True)
            return user
        self._warm.pop(memo, None)
        return None

    async def authenticate(
        self, credentials: Credentials, client: Any, header_memo: bytes | None = None
    ) -> ApiKeyUser:
        """Who the credentials belong to, or raise AuthenticationRefused.

        ``client`` is the scope's ``client`` (host, port): its host is the address noted as
        the key's last use, and is checked against the key's allow-list, if it has one.
        ``header_memo``, when given, is :meth:`header_memo` of the header ``credentials``
        were read from (:meth:`warm` found nothing under it): verified credentials are found
        under it too from then on.
        """
        user, _seconds = await self.check(credentials, client, header_memo)
        return user

    async def check(
        self,
        credentials: Credentials,
        client: Any,
        header_memo: bytes | None = None,
        *,
        organization_id: str | None = None,
        throttle_as: str | None = None,
    ) -> tuple[ApiKeyUser, float]:
        """:meth:`authenticate`, and for how many seconds the answer holds unless told of a
        change (the record's cache time, bounded by the key's expiry, the token's and the
        end of a grace period).

        ``organization_id`` restricts this check to that organization's keys (any other is
        simply invalid, its token left as it is). ``throttle_as``, when given, is the client
        identity failures are counted under instead of ``client``'s address (a verification
        service counts them by calling key and reported address).
        """
        # Keyed BLAKE2s is a MAC (like HMAC, at a third of its cost on this hot path).
        # Copying the keyed state skips hashing the key block again on every request.
        if isinstance(credentials, BearerCredentials):
            mac = self._token_mac.copy()
            data = credentials.token
        else:
            mac = self._key_mac.copy()
            # No length prefix needed: only verified credentials enter the memo, and an entry is
            # hit only by presenting the very characters that were verified, secret included.
            data = f"{credentials.key_id}:{credentials.key_secret}"
        mac.update(data.encode("utf-8", "surrogatepass"))
        memo = mac.digest()
        known = self._warm.get(memo)
        if known is None or organization_id is None:
            pass
        elif known[0].key.organization_id != organization_id:
            # Verified for another organization: checked (and refused) as from scratch.
            known = None
        if known is not None:
            user = self.warm(memo, client)
            if user is not None:
                seconds = known[2] - self.timer()
                if header_memo is not None:
                    # Moved, not copied (one entry per credential): found by its header
                    # from now on.
                    self._remember(header_memo, self._warm.pop(memo))
                return user, seconds
        client_ip = throttle_as if throttle_as is not None else client_host(client)
        if isinstance(credentials, BearerCredentials):
            checked = await self._check_token(credentials.token, client_ip, organization_id)
        else:
            checked = await self._check_key(
                credentials.key_id, credentials.key_secret, client_ip, organization_id
            )
        record, version, valid_until, matched_hash = checked
        # After the secret or token matched and the key's state was checked, as for
        # key_disabled: the refusal tells nothing to someone without the credentials.
        allow_list = self._allow_lists.get(record.allowed_cidrs)
        if allow_list is not None and not allow_list.allows(client):
            raise AuthenticationRefused(errors.IP_NOT_ALLOWED, record)
        user = ApiKeyUser(record, self.scopes, matched_hash=matched_hash)
        # One entry per credential: under the header when it came in one (found there
        # without parsing it), else under the credentials.
        self._remember(
            memo if header_memo is None else header_memo, (user, version, valid_until, allow_list)
        )
        now = self.timer()
        self.usage.note(record.key_id, now, client[0] if client else None)
        if self.observer is not None:
            self.observer.on_authenticated(warm=False)
        return user, valid_until - now

    def _remember(self, memo: bytes, warm: Warm) -> None:
        self._warm[memo] = warm
        self._warm.move_to_end(memo)
        if len(self._warm) > self._max_warm:
            self._warm.popitem(last=False)

    async def _check_key(
        self, key_id: str, key_secret: str, client_ip: str, organization_id: str | None = None
    ) -> Checked:
        # A made-up or mistyped secret fails its checksum: refused before any store call or
        # hash, the throttle store included (it costs nothing to refuse again).
        if not (is_valid_key_id(key_id) and is_valid_key_secret(key_secret)):
            raise AuthenticationRefused(errors.INVALID_CREDENTIALS)
        throttle = self.throttle
        try:
            # A client known to be throttled costs no lookup either.
            throttle.check_known_full(key_id, client_ip)
        except Throttled as throttled:
            raise self._too_many(throttled) from None
        attempt: Attempt | None = None
        try:
            for _ in range(_MAX_LOOKUPS):
                version = self._version(key_id)
                record, fetched_at = await self._record(key_id, version)
                hashes: tuple[str, ...] = ()
                matched: str | None = None
                if record is not None and self._in_organization(record, organization_id):
                    hashes = self._accepted_hashes(record)
                    for secret_hash in hashes:
                        # Verified before in this process: the right secret, nothing to throttle.
                        marker = self._marker(key_id, secret_hash, key_secret)
                        if await self._verified.get(marker) is not None:
                            matched = secret_hash
                            break
                if matched is None:
                    # Reserved before any verification, the previous secret's included.
                    if attempt is None:
                        attempt = await self._reserve_attempt(key_id, client_ip, bool(hashes))
                    matched = await self._verify(record, hashes, key_secret)
                if self._version(key_id) == version:
                    break
            else:
                raise AuthenticationRefused(self._unavailable)
            if record is None:
                raise AuthenticationRefused(errors.INVALID_CREDENTIALS)
            if matched is None:
                # A wrong secret for a known key of this organization: counted for the key.
                known = record if self._in_organization(record) else None
                raise AuthenticationRefused(errors.INVALID_CREDENTIALS, known)
        except AuthenticationRefused as refused:
            if attempt is not None:
                # A wrong secret keeps its places in the buckets; a failed store does not count.
                if refused.refusal is errors.INVALID_CREDENTIALS:
                    await throttle.failed(attempt)
                else:
                    await throttle.abandoned(attempt)
            raise
        except BaseException:
            if attempt is not None:
                throttle.forget(attempt)  # cancelled: no await may run here
            raise
        if attempt is not None:
            await throttle.succeeded(attempt)
        self._check_state(record)
        valid_until = min(
            self._valid_until(fetched_at, record.expires_at, self._grace_end(record, matched)),
            self.timer() + self.verified_ttl,
        )
        return record, version, valid_until, matched

    def _accepted_hashes(self, record: KeyRecord) -> tuple[str, ...]:
        """The current secret hash, and the previous one while its grace period lasts."""
        previous = record.previous_secret_hash
        if previous is None:
            return (record.secret_hash,)
        expires_at = record.previous_secret_expires_at
        if expires_at is None or expires_at <= self.clock():
            return (record.secret_hash,)
        return (record.secret_hash, previous)

    @staticmethod
    def _grace_end(record: KeyRecord, matched_hash: str) -> datetime | None:
        """When a match stops holding because of the grace period (None for the current hash)."""
        if matched_hash == record.secret_hash:
            return None
        return record.previous_secret_expires_at

    async def _reserve_attempt(self, key_id: str, client_ip: str, key_exists: bool) -> Attempt:
        try:
            return await self.throttle.reserve_key_attempt(key_id, client_ip, key_exists=key_exists)
        except Throttled as throttled:
            raise self._too_many(throttled) from None
        except ThrottleUnavailable:
            raise AuthenticationRefused(self._unavailable) from None

    def _too_many(self, throttled: Throttled) -> AuthenticationRefused:
        return AuthenticationRefused(
            errors.TOO_MANY_ATTEMPTS.with_headers(Retry_After=str(throttled.retry_after))
        )

    async def _check_token(
        self, token: str, client_ip: str, organization_id: str | None = None
    ) -> Checked:
        throttle = self.throttle
        digest = token_digest(token)
        # Looked up before the IP's throttle: a token that exists was issued to someone who
        # had the key's secret (and is unguessable), so others' failures from the same
        # address never refuse it. An unknown one costs no more than below the limit.
        issued = await self._token(digest)
        if issued is None:
            try:
                throttle.check_known_full(None, client_ip)
                await throttle.token_failed(digest, client_ip)
            except Throttled as throttled:
                raise self._too_many(throttled) from None
            except ThrottleUnavailable:
                raise AuthenticationRefused(self._unavailable) from None
            raise AuthenticationRefused(errors.INVALID_TOKEN)
        if issued.expires_at <= self.clock():
            await self._forget_token(digest)
            raise AuthenticationRefused(errors.TOKEN_EXPIRED)
        for _ in range(_MAX_LOOKUPS):
            version = self._version(issued.key_id)
            record, fetched_at = await self._record(issued.key_id, version)
            if self._version(issued.key_id) == version:
                break
        else:
            raise AuthenticationRefused(self._unavailable)
        # A regenerated secret changes the stored hash, and with it the fingerprint: a token
        # issued for the previous secret holds only while that secret's grace period lasts.
        matched: str | None = None
        if record is not None and not self._in_organization(record, organization_id):
            # Another organization's token: invalid here, and still valid for its own key.
            try:
                await throttle.token_failed(digest, client_ip)
            except Throttled as throttled:
                raise self._too_many(throttled) from None
            except ThrottleUnavailable:
                raise AuthenticationRefused(self._unavailable) from None
            raise AuthenticationRefused(errors.INVALID_TOKEN)
        if record is not None and self._in_organization(record):
            for secret_hash in self._accepted_hashes(record):
                if hmac.compare_digest(secret_fingerprint(secret_hash), issued.secret_fingerprint):
                    matched = secret_hash
                    break
        if record is None or matched is None:
            await self._forget_token(digest)
            raise AuthenticationRefused(errors.INVALID_TOKEN)
        self._check_state(record)
        valid_until = self._valid_until(
            fetched_at, record.expires_at, issued.expires_at, self._grace_end(record, matched)
        )
        return record, version, valid_until, matched

    def _valid_until(self, fetched_at: float, *deadlines: datetime | None) -> float:
        valid_until = fetched_at + self.record_ttl
        now, timer = self.clock(), self.timer()
        for deadline in deadlines:
            if deadline is not None:
                valid_until = min(valid_until, timer + (deadline - now).total_seconds())
        return valid_until

    async def issue_token(self, user: ApiKeyUser) -> str:
        """A new access token for the key ``user`` authenticated with; only its digest is stored.

        The token is tied to the secret that was presented: one obtained with the previous
        secret during a grace period stops working when the grace period ends. The store
        keeps at most ``tokens.max_per_key`` live tokens per key (the oldest go).
        """
        token = new_access_token()
        issued = TokenRecord(
            key_id=user.key.key_id,
            secret_fingerprint=secret_fingerprint(user.matched_hash),
            expires_at=self.clock() + timedelta(seconds=self.tokens.ttl),
        )
        try:
            await self.token_store.save_token(
                token_digest(token), issued, max_per_key=self.tokens.max_per_key
            )
        except Exception as exc:
            raise self._store_failed("token store", exc) from None
        return token

    async def _record(self, key_id: str, version: int) -> tuple[KeyRecord | None, float]:
        """The record and when (timer) it was read from the store."""
        cached: tuple[KeyRecord, float, int] | None = await self.cache.get("k:" + key_id)
        if cached is not None and cached[2] == version:
            return cached[0], cached[1]
        fetched_at = self.timer()
        try:
            record = await self.store.get_key(key_id)
        except Exception as exc:
            raise self._store_failed("key store", exc) from None
        # key_changed() during the lookup means the record may predate the change.
        if record is not None and self._version(key_id) == version:
            await self.cache.set("k:" + key_id, (record, fetched_at, version), self.record_ttl)
        return record, fetched_at

    async def _verify(
        self, record: KeyRecord | None, hashes: tuple[str, ...], secret: str
    ) -> str | None:
        """The hash in ``hashes`` that ``secret`` matches, checked with the slow hash; ``hashes``
        is empty when the record is not usable."""
        if record is None or not hashes:
            # Same work as for a real key, so that timing does not tell which Key IDs exist.
            await self._run_verify(self.verifier.dummy_hash, secret)
            return None
        # A wrong secret for a key in its grace period costs two verifications, and so takes
        # longer than for an unknown Key ID. Acceptable: it tells only that a key is being
        # rolled over, to someone who already knows its Key ID, and both are throttled alike.
        for secret_hash in hashes:
            if await self._run_verify(secret_hash, secret):
                ttl = self.verified_ttl
                grace_end = self._grace_end(record, secret_hash)
                if grace_end is not None:
                    # The memo of a previous secret must not outlive its grace period.
                    ttl = min(ttl, (grace_end - self.clock()).total_seconds())
                await self._verified.set(
                    self._marker(record.key_id, secret_hash, secret), True, ttl
                )
                if secret_hash == record.secret_hash:
                    # Never the previous hash: it is on its way out.
                    await self._rehash_if_needed(record, secret)
                return secret_hash
        return None

    async def _run_verify(self, secret_hash: str, secret: str) -> bool:
        observer = self.observer
        try:
            if observer is None:
                return await anyio.to_thread.run_sync(
                    self.verifier.verify, secret_hash, secret, limiter=self._limiter
                )
            matched, seconds = await anyio.to_thread.run_sync(
                _timed, self.verifier.verify, secret_hash, secret, limiter=self._limiter
            )
        except Exception as exc:
            raise self._store_failed("secret verifier", exc) from None
        # Told on the event loop's thread, so that an observer needs no locking of its own.
        observer.on_verification(seconds)
        return matched

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

    def _marker(self, key_id: str, secret_hash: str, secret: str) -> str:
        """The verified-credential cache key: an HMAC from which no secret can be recovered."""
        mac = hmac.new(self._hmac_key, digestmod=hashlib.sha256)
        for part in (key_id, secret_hash, secret):
            data = part.encode("utf-8", "surrogatepass")
            mac.update(len(data).to_bytes(4, "big") + data)
        return "v:" + mac.hexdigest()

    async def _token(self, digest: str) -> TokenRecord | None:
        # A token cached before its key changed may have been revoked since: read it again.
        cached: tuple[TokenRecord, int] | None = await self.cache.get("t:" + digest)
        if cached is not None and cached[1] == self._version(cached[0].key_id):
            return cached[0]
        try:
            issued = await self.token_store.get_token(digest)
        except Exception as exc:
            raise self._store_failed("token store", exc) from None
        if issued is not None:
            remaining = (issued.expires_at - self.clock()).total_seconds()
            version = self._version(issued.key_id)
            await self.cache.set("t:" + digest, (issued, version), min(self.record_ttl, remaining))
        return issued

    async def _forget_token(self, digest: str) -> None:
        await self.cache.delete("t:" + digest)
        try:
            await self.token_store.delete_token(digest)
        except Exception as exc:
            # The token is refused anyway; the next use will try to delete it again.
            logger.warning("could not delete a revoked token: %s", type(exc).__name__)

    def _in_organization(self, record: KeyRecord, organization_id: str | None = None) -> bool:
        if organization_id is not None and record.organization_id != organization_id:
            return False
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
            raise AuthenticationRefused(refusal, record)

    def _store_failed(self, what: str, exc: Exception) -> AuthenticationRefused:
        # Fail closed. Only the class name is logged: exception texts can carry SQL or data.
        logger.error("%s unavailable (%s): answering 503", what, type(exc).__name__)
        return AuthenticationRefused(self._unavailable)
