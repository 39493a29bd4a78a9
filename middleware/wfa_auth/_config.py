"""The middleware's options, grouped by concern into frozen objects (as httpx's ``Timeout``).

Each object checks its values when built, so that a nonsense setting fails at startup rather
than on the first request.
"""

from __future__ import annotations

from dataclasses import dataclass

from wfa_auth.base import CallSink, CounterStore, ThrottleStore

DEFAULT_TOKEN_PATH = "/v1/auth/api-key/token"  # noqa: S105 -- a URL path


def _positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive")


@dataclass(frozen=True, slots=True)
class Tokens:
    """The token exchange: ``POST {path}`` trades a Key ID and Key Secret for an access token.

    ``path`` is relative to the mount point; None turns the endpoint off. A token is valid
    ``ttl`` seconds. At most ``max_per_key`` tokens of one key live at a time: issuing one
    more deletes that key's oldest, so a client that asks for a token per call cannot fill
    the token store. A request body above ``max_request_bytes`` is answered 413.
    """

    path: str | None = DEFAULT_TOKEN_PATH
    ttl: int = 3600
    max_per_key: int = 100
    max_request_bytes: int = 4096

    def __post_init__(self) -> None:
        _positive(ttl=self.ttl, max_per_key=self.max_per_key)
        _positive(max_request_bytes=self.max_request_bytes)
        if self.path is not None and not self.path.startswith("/"):
            raise ValueError("path must start with '/'")


@dataclass(frozen=True, slots=True)
class Caching:
    """What a process remembers between requests, and for how long.

    A key record read from the store is trusted ``record_ttl`` seconds (a change made by
    another process is seen within that time, or at once with ``key_changed``). A verified
    secret is remembered ``verified_ttl`` seconds, as a keyed digest, so that a warm request
    costs no argon2. ``last_used_at`` is written about once per key and ``usage_interval``
    seconds (at most once per 59/60 of it), with the time of the latest use. At most
    ``max_concurrent_verifications`` argon2 checks run at once, in threads, so that they
    never starve the event loop.

    ``max_warm_entries`` bounds what a process remembers, each part on its own, with the least
    recently used going first: the warm memo (one entry per verified credential: a key's
    secret or a token, as presented), the verified-secret markers, and the default cache of
    key records and tokens. A warm key costs about 3 KB of memory in all (measured with the
    service's key store): the default, 60,000, about 180 MB on top of the process's own (see
    ``docs/scale.md``). A client beyond it is checked again (a query, never argon2 while its
    marker lasts), never refused.
    """

    record_ttl: float = 5.0
    verified_ttl: float = 3600.0
    usage_interval: float = 60.0
    max_concurrent_verifications: int = 2
    max_warm_entries: int = 60_000

    def __post_init__(self) -> None:
        _positive(record_ttl=self.record_ttl, verified_ttl=self.verified_ttl)
        _positive(usage_interval=self.usage_interval)
        _positive(max_concurrent_verifications=self.max_concurrent_verifications)
        _positive(max_warm_entries=self.max_warm_entries)


@dataclass(frozen=True, slots=True)
class Throttling:
    """Limits on failing attempts, counted in ``store`` (shared by every process using it).

    Per Key ID and client IP, at most ``max_failures_per_key_and_ip`` failed attempts in
    ``window`` seconds; a success clears them. Per client IP, at most
    ``max_failing_keys_per_ip`` *distinct* failing Key IDs (or bearer tokens) in ``window``
    seconds: that stops one address from trying secrets against many keys, while clients
    behind one NAT address that fail with one key never lock out each other's keys. Each
    attempt is reserved before the secret is checked, so concurrent attempts never exceed a
    limit; a secret already verified in this process is not counted at all. When ``store``
    fails, requests are answered 503 with ``Retry-After: retry_after_unavailable`` (also
    used when a key store fails). None means a :class:`~wfa_auth.MemoryThrottleStore`,
    which counts in this process only.
    """

    store: ThrottleStore | None = None
    max_failures_per_key_and_ip: int = 10
    max_failing_keys_per_ip: int = 20
    window: float = 300.0
    retry_after_unavailable: int = 5

    def __post_init__(self) -> None:
        _positive(max_failures_per_key_and_ip=self.max_failures_per_key_and_ip)
        _positive(max_failing_keys_per_ip=self.max_failing_keys_per_ip, window=self.window)
        _positive(retry_after_unavailable=self.retry_after_unavailable)


@dataclass(frozen=True, slots=True)
class Metering:
    """Per-key rate limits and quotas, and call analytics.

    A key whose record has a ``rate_limit`` or a ``quota`` is limited through ``counters``
    (shared by every process using it; None: a :class:`~wfa_auth.MemoryCounterStore`,
    this process only). Unused leased units are given back every ``sync_interval`` seconds
    (and once a key has been idle that long). With ``calls`` set, every call of a known key
    is counted per hour and outcome and written there every ``flush_interval`` seconds.
    """

    counters: CounterStore | None = None
    calls: CallSink | None = None
    flush_interval: float = 10.0
    sync_interval: float = 1.0

    def __post_init__(self) -> None:
        _positive(flush_interval=self.flush_interval, sync_interval=self.sync_interval)
