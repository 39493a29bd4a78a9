"""Service settings, read from ``WFA_*`` environment variables; command-line flags override them."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_DATABASE_URL = "sqlite://wfa-keys.sqlite3"


class SettingsError(ValueError):
    """A setting has a value the service cannot use; the message names the variable."""


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name} must be on or off, not {raw!r}")


def _int(name: str, raw: str, minimum: int, maximum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name} must be between {minimum} and {maximum}, not {value}")
    return value


def _list(_name: str, raw: str) -> tuple[str, ...]:
    return tuple(item.strip().rstrip("/") for item in raw.split(",") if item.strip())


def _check_deployment(settings: Settings) -> None:
    for item in settings.forwarded_allow_ips:
        if item == "*":
            continue  # uvicorn's "every address": for a proxy reached only through a socket
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise SettingsError(
                f"WFA_FORWARDED_ALLOW_IPS must list IP addresses or networks, not {item!r}"
            ) from None
    root = settings.root_path
    if root and (not root.startswith("/") or root.endswith("/") or "//" in root):
        raise SettingsError(
            f"WFA_ROOT_PATH must start with / and not end with one (e.g. /keys), not {root!r}"
        )
    store = settings.throttle_store
    if store not in {"memory", "database"} and not store.startswith(("redis://", "rediss://")):
        raise SettingsError(
            "WFA_THROTTLE_STORE must be memory, database or a redis:// URL, not "
            f"{store.split('://')[0]!r}"
        )


def _check_request_heads(settings: Settings) -> None:
    for name, value in (
        ("WFA_MAX_REQUEST_LINE_BYTES", settings.max_request_line_bytes),
        ("WFA_MAX_HEADER_BYTES", settings.max_header_bytes),
    ):
        if value > settings.max_request_head_bytes:
            raise SettingsError(f"{name} cannot be larger than WFA_MAX_REQUEST_HEAD_BYTES")


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told; each field documents its ``WFA_`` variable.

    The defaults are safe for production: GraphiQL and introspection are off unless
    ``dev`` is on, and argon2 runs with at least OWASP's minimum parameters.
    """

    #: the database: `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/NAME`
    database_url: str = field(default=DEFAULT_DATABASE_URL, metadata={"env": "WFA_DATABASE_URL"})
    #: development mode: GraphiQL, introspection and field suggestions for everyone
    dev: bool = field(default=False, metadata={"env": "WFA_DEV"})
    #: serve GraphiQL at `GET /graphql` (unset: as `WFA_DEV`)
    graphiql: bool | None = field(default=None, metadata={"env": "WFA_GRAPHIQL"})
    #: serve the admin console (the API Keys page) at `/`
    console: bool = field(default=True, metadata={"env": "WFA_CONSOLE"})
    #: where GraphiQL's scripts and styles come from (pinned with SRI): empty, this app's own
    #: copy shipped in the wheel (works offline); or a CDN's base URL such as https://unpkg.com
    graphiql_assets_url: str = field(default="", metadata={"env": "WFA_GRAPHIQL_ASSETS_URL"})
    #: comma-separated origins of frontend apps allowed to call `/graphql` with the cookie (never
    #: `*`)
    cors_origins: tuple[str, ...] = field(default=(), metadata={"env": "WFA_CORS_ORIGINS"})
    # argon2id cost for secrets and passwords; OWASP's minimum is m=19 MiB, t=2, p=1.
    #: argon2id iterations (2 to 20) for Key Secrets and passwords
    argon2_time_cost: int = field(
        default=2, metadata={"env": "WFA_ARGON2_TIME_COST", "range": (2, 20)}
    )
    #: argon2id memory in KiB (19 MiB, OWASP's minimum, or more)
    argon2_memory_cost_kib: int = field(
        default=19456, metadata={"env": "WFA_ARGON2_MEMORY_COST_KIB", "range": (19456, 4194304)}
    )
    #: argon2id lanes (1 to 16)
    argon2_parallelism: int = field(
        default=1, metadata={"env": "WFA_ARGON2_PARALLELISM", "range": (1, 16)}
    )
    #: seconds without a request after which a session ends
    session_idle_timeout: int = field(
        default=30 * 60, metadata={"env": "WFA_SESSION_IDLE_TIMEOUT", "range": (60, 7 * 86400)}
    )
    #: seconds after sign-in after which a session ends in any case
    session_absolute_timeout: int = field(
        default=12 * 3600,
        metadata={"env": "WFA_SESSION_ABSOLUTE_TIMEOUT", "range": (60, 30 * 86400)},
    )
    #: lifetime in seconds of access tokens from the token endpoint
    token_ttl: int = field(default=3600, metadata={"env": "WFA_TOKEN_TTL", "range": (60, 86400)})
    #: deepest GraphQL query accepted
    max_query_depth: int = field(
        default=10, metadata={"env": "WFA_MAX_QUERY_DEPTH", "range": (1, 100)}
    )
    #: most aliases in one GraphQL query
    max_aliases: int = field(default=15, metadata={"env": "WFA_MAX_ALIASES", "range": (1, 1000)})
    #: most tokens in one GraphQL query
    max_tokens: int = field(default=2000, metadata={"env": "WFA_MAX_TOKENS", "range": (10, 100000)})
    #: largest request body; larger ones get 413
    max_body_bytes: int = field(
        default=64 * 1024, metadata={"env": "WFA_MAX_BODY_BYTES", "range": (1024, 10 * 1024**2)}
    )
    #: failed sign-ins per email and client IP within the window
    login_max_failures_per_email_ip: int = field(
        default=5, metadata={"env": "WFA_LOGIN_MAX_FAILURES_PER_EMAIL_IP", "range": (1, 10000)}
    )
    #: failed sign-ins per client IP within the window
    login_max_failures_per_ip: int = field(
        default=50, metadata={"env": "WFA_LOGIN_MAX_FAILURES_PER_IP", "range": (1, 100000)}
    )
    #: the sign-in throttling window, in seconds
    login_window: int = field(
        default=15 * 60, metadata={"env": "WFA_LOGIN_WINDOW", "range": (1, 86400)}
    )
    #: `DEBUG`, `INFO`, `WARNING` or `ERROR`
    log_level: str = field(default="INFO", metadata={"env": "WFA_LOG_LEVEL"})
    # Seconds between two checks for keys past their organization's inactivity limit.
    #: seconds (1 to 86400) between two inactivity checks in each `serve` process (see "Inactive
    #: keys")
    inactivity_check_interval: int = field(
        default=3600, metadata={"env": "WFA_INACTIVITY_CHECK_INTERVAL", "range": (1, 86400)}
    )
    # Deployment: which proxies to believe, where the service is mounted, what is shared.
    #: comma-separated addresses or networks (`10.0.0.0/8`) of the reverse proxies whose
    #: `X-Forwarded-For` / `X-Forwarded-Proto` are believed; empty: nobody's (`--forwarded-allow-
    #: ips`)
    forwarded_allow_ips: tuple[str, ...] = field(
        default=(), metadata={"env": "WFA_FORWARDED_ALLOW_IPS"}
    )
    #: path prefix the proxy serves the service under, e.g. `/keys` (`--root-path`)
    root_path: str = field(default="", metadata={"env": "WFA_ROOT_PATH"})
    #: where the sign-in and API-key throttle counters live: `database` (shared by every process on
    #: the database), `redis://HOST:PORT/DB` (needs `pip install 'wfa-keys[redis]'`), or `memory`
    #: (each process alone)
    throttle_store: str = field(default="database", metadata={"env": "WFA_THROTTLE_STORE"})
    #: seconds a key record is trusted while the change feed is up (1 to 3600); 1 s at most while
    #: it is down
    record_cache_ttl: int = field(
        default=60, metadata={"env": "WFA_RECORD_CACHE_TTL", "range": (1, 3600)}
    )
    #: most PostgreSQL connections in one process's pool (1 to 1000)
    database_pool_size: int = field(
        default=5, metadata={"env": "WFA_DATABASE_POOL_SIZE", "range": (1, 1000)}
    )
    #: seconds a database step may take on PostgreSQL before it counts as unreachable:
    #: connecting, taking a pooled connection, each statement
    database_timeout: int = field(
        default=3, metadata={"env": "WFA_DATABASE_TIMEOUT", "range": (1, 60)}
    )
    #: seconds a request may take to start its answer; after that it is answered 503 with
    #: `Retry-After` (a database that stopped answering never holds a client)
    request_timeout: int = field(
        default=5, metadata={"env": "WFA_REQUEST_TIMEOUT", "range": (1, 300)}
    )
    #: serve Prometheus metrics at `GET /metrics`
    metrics: bool = field(default=False, metadata={"env": "WFA_METRICS"})
    # Issue 18 (floods and lock-outs): audit retention and known devices.
    #: Audit events older than this many days are deleted (hourly, by ``serve``).
    audit_retention_days: int = field(
        default=365, metadata={"env": "WFA_AUDIT_RETENTION_DAYS", "range": (1, 36500)}
    )
    #: Days a browser stays a known device of an admin after a sign-in (0: no device cookie).
    #: A known device is throttled on its own, not by others' failures from its address.
    device_cookie_days: int = field(
        default=90, metadata={"env": "WFA_DEVICE_COOKIE_DAYS", "range": (0, 400)}
    )
    # Webhooks (issue 23; docs/webhooks.md).
    #: Allow ``http://`` and loopback webhook URLs: for tests and local development only.
    webhooks_allow_insecure: bool = field(
        default=False, metadata={"env": "WFA_WEBHOOKS_ALLOW_INSECURE"}
    )
    #: Milliseconds between two looks for webhook messages to deliver, per process.
    webhooks_poll_interval_ms: int = field(
        default=1000, metadata={"env": "WFA_WEBHOOKS_POLL_INTERVAL_MS", "range": (10, 600000)}
    )
    #: Milliseconds: the first retry of a failed delivery comes within this (later ones double).
    webhooks_retry_base_ms: int = field(
        default=5000, metadata={"env": "WFA_WEBHOOKS_RETRY_BASE_MS", "range": (10, 10000)}
    )
    #: Seconds between two checks for keys due an expiry reminder, per process.
    webhooks_reminder_interval: int = field(
        default=300, metadata={"env": "WFA_WEBHOOKS_REMINDER_INTERVAL", "range": (1, 86400)}
    )
    # Request heads (docs/limits.md): counted as they arrive, refused with 431 before more of
    # them is buffered. Every ``serve`` process (and plain uvicorn with the service's protocol)
    # reads them from the environment.
    #: Longest request line (method, target, version), CRLF included.
    max_request_line_bytes: int = field(
        default=16 * 1024,
        metadata={"env": "WFA_MAX_REQUEST_LINE_BYTES", "range": (1024, 1024**2)},
    )
    #: Longest header line (name, value), CRLF included.
    max_header_bytes: int = field(
        default=16 * 1024, metadata={"env": "WFA_MAX_HEADER_BYTES", "range": (1024, 1024**2)}
    )
    #: Largest request head: the request line and every header line together.
    max_request_head_bytes: int = field(
        default=64 * 1024,
        metadata={"env": "WFA_MAX_REQUEST_HEAD_BYTES", "range": (4096, 4 * 1024**2)},
    )
    #: days each key's hourly call counts (usage analytics) are kept
    usage_retention_days: int = field(
        default=90, metadata={"env": "WFA_USAGE_RETENTION_DAYS", "range": (1, 3650)}
    )

    @property
    def graphiql_enabled(self) -> bool:
        """GraphiQL is served when asked for explicitly, or in dev mode."""
        return self.dev if self.graphiql is None else self.graphiql

    @property
    def production(self) -> bool:
        """Production mode: introspection and suggestions only for signed-in admins."""
        return not self.dev

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read the settings from ``environ`` (default ``os.environ``), then apply overrides."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = f.metadata["env"]
            if name not in env:
                continue
            raw = env[name]
            if f.name in {"cors_origins", "forwarded_allow_ips"}:
                values[f.name] = _list(name, raw)
            elif f.name in {"dev", "graphiql", "console", "metrics", "webhooks_allow_insecure"}:
                values[f.name] = _bool(name, raw)
            elif "range" in f.metadata:
                values[f.name] = _int(name, raw, *f.metadata["range"])
            elif f.name == "log_level":
                level = raw.strip().upper()
                if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
                    raise SettingsError(f"{name} must be DEBUG, INFO, WARNING or ERROR")
                values[f.name] = level
            else:
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        if "*" in settings.cors_origins:
            raise SettingsError("WFA_CORS_ORIGINS cannot be '*': cookies are sent with credentials")
        if settings.graphiql_assets_url and not settings.graphiql_assets_url.startswith(
            ("https://", "http://")
        ):
            raise SettingsError(
                "WFA_GRAPHIQL_ASSETS_URL must be an absolute http(s) URL, or empty for the "
                "app's own copy"
            )
        if settings.session_idle_timeout > settings.session_absolute_timeout:
            raise SettingsError(
                "WFA_SESSION_IDLE_TIMEOUT cannot be longer than WFA_SESSION_ABSOLUTE_TIMEOUT"
            )
        _check_deployment(settings)
        _check_request_heads(settings)
        return settings

    @classmethod
    def describe(cls) -> list[tuple[str, str]]:
        """(variable, default) pairs, for the README's configuration table and ``--help``."""
        return [(f.metadata["env"], repr(f.default)) for f in dataclasses.fields(cls)]
