"""The GraphQL object types, built from the ORM models.

Converting models to these types in one place keeps the secret hash and the foreign keys
out of the API: a type only has the fields listed here. Lists are built from plain rows of
the columns in ``*_FIELDS`` (``.values()``), which never include a hash.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import strawberry

from wfa_keys import models
from wfa_keys.graphql.pagination import Count, Page
from wfa_keys.graphql.usage import (
    Quota,
    QuotaInput,
    RateLimit,
    RateLimitInput,
    UsageBucket,
    UsageGranularity,
    limits_from_row,
    resolve_key_usage,
)
from wfa_keys.models import AuditAction, Role

# The model's enum is the GraphQL enum too: its member names are the GraphQL values.
strawberry.enum(Role, name="Role", description="What a user may do.")


@strawberry.enum(description="Whether an API key authenticates calls now.")
class ApiKeyStatus(Enum):
    """ACTIVE: usable. DISABLED: turned off by an admin. EXPIRED: past ``expiresAt``.

    An expired key is EXPIRED even when also disabled: enabling it would not help.
    """

    ACTIVE = "active"
    DISABLED = "disabled"
    EXPIRED = "expired"


@strawberry.type(description="A customer organization.")
class Organization:
    """A customer organization."""

    id: strawberry.ID
    name: str
    has_workflow_automation: bool = strawberry.field(
        description="True while the organization subscribes to Workflow Automation."
    )
    key_inactivity_days: int | None = strawberry.field(
        default=None,
        description=(
            "Keys neither used nor created for this many days are disabled automatically "
            "(audit action KEY_AUTO_DISABLED); null: never."
        ),
    )

    @classmethod
    def from_model(cls, org: models.Organization) -> Organization:
        """The API view of an organization."""
        return cls(
            id=strawberry.ID(str(org.id)),
            name=org.name,
            has_workflow_automation=org.has_workflow_automation,
            key_inactivity_days=org.key_inactivity_days,
        )


@strawberry.type(description="A person who signs in.")
class User:
    """A person who signs in."""

    id: strawberry.ID
    email: str
    role: Role
    organization: Organization

    @classmethod
    def from_model(cls, user: models.User) -> User:
        """The API view of a user; ``user.organization`` must be loaded."""
        return cls(
            id=strawberry.ID(str(user.id)),
            email=user.email,
            role=user.role,
            organization=Organization.from_model(user.organization),
        )


def key_status(key: models.ApiKey, now: datetime | None = None) -> ApiKeyStatus:
    """The status of ``key`` at ``now`` (default: the current time)."""
    return _status(key.enabled, key.expires_at, now or datetime.now(UTC))


def _status(enabled: bool, expires_at: datetime | None, now: datetime) -> ApiKeyStatus:
    if expires_at is not None and expires_at <= now:
        return ApiKeyStatus.EXPIRED
    return ApiKeyStatus.ACTIVE if enabled else ApiKeyStatus.DISABLED


def _while_valid(expires_at: datetime | None, now: datetime) -> datetime | None:
    """The end of a grace period still running, else None."""
    return expires_at if expires_at is not None and expires_at > now else None


#: The columns an API key page reads: the key's, its owner's and the owner's organization's.
API_KEY_FIELDS = (
    "id",
    "key_id",
    "name",
    "enabled",
    "created_at",
    "expires_at",
    "last_used_at",
    "last_used_ip",
    "secret_regenerated_at",
    "previous_secret_expires_at",
    "scopes",
    "allowed_cidrs",
    "rate_limit_requests",
    "rate_limit_per_seconds",
    "quota_requests",
    "quota_period",
    "owner_id",
    "owner__email",
    "owner__role",
    "owner__organization__id",
    "owner__organization__name",
    "owner__organization__has_workflow_automation",
    "owner__organization__key_inactivity_days",
)


async def _key_usage(
    root: ApiKey,
    info: strawberry.Info,
    since: datetime,
    until: datetime | None = None,
    granularity: UsageGranularity | None = UsageGranularity.HOUR,
) -> list[UsageBucket]:
    width = UsageGranularity.HOUR if granularity is None else granularity
    return await resolve_key_usage(info, str(root.id), since, until, width)


@strawberry.type(description="An API key. Its secret is never shown again after creation.")
class ApiKey:
    """An API key as the API shows it: never its secret, never its hash."""

    id: strawberry.ID = strawberry.field(description="The Key ID, public; sent with every call.")
    name: str
    enabled: bool
    status: ApiKeyStatus
    created_at: datetime
    expires_at: datetime | None = strawberry.field(description="Null: the key never expires.")
    last_used_at: datetime | None
    last_used_ip: str | None = strawberry.field(
        description="The client address of the last call, written with lastUsedAt."
    )
    secret_regenerated_at: datetime | None = strawberry.field(
        description="When the secret was last regenerated; null if never."
    )
    previous_secret_expires_at: datetime | None = strawberry.field(
        description=(
            "Until when the secret replaced by the last regeneration (and the tokens issued "
            "for it) still works; null when no old secret is valid."
        )
    )
    scopes: list[str] = strawberry.field(
        description="What the key may call (see apiScopes); empty: only calls needing none."
    )
    allowed_cidrs: list[str] = strawberry.field(
        description="The networks calls may come from (CIDR); empty: anywhere."
    )
    owner: User = strawberry.field(description="The admin who created the key.")
    rate_limit: RateLimit | None = strawberry.field(
        default=None, description="The key's rate limit; null: none."
    )
    quota: Quota | None = strawberry.field(default=None, description="The key's quota; null: none.")

    usage: list[UsageBucket] = strawberry.field(
        resolver=_key_usage,
        description=(
            "The key's calls per bucket by outcome, from the bucket holding `since` to the "
            "one holding `until` (default: now), empty buckets included; at most 31 days of "
            "HOUR or 400 of DAY (BAD_USER_INPUT beyond). Calls show within 10 seconds; "
            "kept WFA_USAGE_RETENTION_DAYS (90) days."
        ),
    )

    @classmethod
    def from_model(cls, key: models.ApiKey) -> ApiKey:
        """The API view of a key; ``key.owner.organization`` must be loaded."""
        now = datetime.now(UTC)
        rate_limit, quota = limits_from_row(key.key_id, key)
        return cls(
            id=strawberry.ID(key.key_id),
            name=key.name,
            enabled=key.enabled,
            status=_status(key.enabled, key.expires_at, now),
            created_at=key.created_at,
            expires_at=key.expires_at,
            last_used_at=key.last_used_at,
            last_used_ip=key.last_used_ip,
            secret_regenerated_at=key.secret_regenerated_at,
            previous_secret_expires_at=_while_valid(key.previous_secret_expires_at, now),
            scopes=list(key.scopes or ()),
            allowed_cidrs=list(key.allowed_cidrs or ()),
            owner=User.from_model(key.owner),
            rate_limit=rate_limit,
            quota=quota,
        )

    @classmethod
    def list_from_rows(cls, rows: list[dict[str, Any]]) -> list[ApiKey]:
        """The API view of rows of :data:`API_KEY_FIELDS`; one ``User`` per distinct owner."""
        now = datetime.now(UTC)
        owners: dict[Any, User] = {}
        keys = []
        for row in rows:
            owner = owners.get(row["owner_id"])
            if owner is None:
                owner = owners[row["owner_id"]] = User(
                    id=strawberry.ID(str(row["owner_id"])),
                    email=row["owner__email"],
                    role=row["owner__role"],
                    organization=Organization(
                        id=strawberry.ID(str(row["owner__organization__id"])),
                        name=row["owner__organization__name"],
                        has_workflow_automation=row["owner__organization__has_workflow_automation"],
                        key_inactivity_days=row["owner__organization__key_inactivity_days"],
                    ),
                )
            rate_limit, quota = limits_from_row(row["key_id"], row, dict.__getitem__)
            keys.append(
                cls(
                    id=strawberry.ID(row["key_id"]),
                    name=row["name"],
                    enabled=row["enabled"],
                    status=_status(row["enabled"], row["expires_at"], now),
                    created_at=row["created_at"],
                    expires_at=row["expires_at"],
                    last_used_at=row["last_used_at"],
                    last_used_ip=row["last_used_ip"],
                    secret_regenerated_at=row["secret_regenerated_at"],
                    previous_secret_expires_at=_while_valid(row["previous_secret_expires_at"], now),
                    scopes=list(row["scopes"] or ()),
                    allowed_cidrs=list(row["allowed_cidrs"] or ()),
                    owner=owner,
                    rate_limit=rate_limit,
                    quota=quota,
                )
            )
        return keys


@strawberry.type(description="A key with its secret, returned once by create and regenerate.")
class ApiKeyWithSecret:
    """A key and its Key Secret. The secret is not stored and cannot be shown again."""

    api_key: ApiKey
    key_secret: str = strawberry.field(
        description="Copy it now: only its hash is kept, it cannot be shown again."
    )


@strawberry.type(description="The key that was deleted.")
class DeletedApiKey:
    """The Key ID of a deleted key."""

    id: strawberry.ID


@strawberry.type(description="Where a page ends; pass endCursor as after for the next.")
class PageInfo:
    """Where a page ends: pass ``endCursor`` as ``after`` to get the next one."""

    has_next_page: bool
    end_cursor: str | None

    @classmethod
    def of(cls, page: Page) -> PageInfo:
        """Where ``page`` ends."""
        return cls(has_next_page=page.has_next_page, end_cursor=page.end_cursor)


async def _total_count(root: ApiKeyConnection | AuditEventConnection) -> int:
    # A resolver, not a value: the count runs only when a client selects totalCount.
    return await root.count()


@strawberry.type(description="A page of API keys, newest first.")
class ApiKeyConnection:
    """A page of API keys; the total is counted only when the client selects it."""

    nodes: list[ApiKey]
    page_info: PageInfo
    count: strawberry.Private[Count]
    total_count: int = strawberry.field(
        resolver=_total_count,
        description=(
            "How many keys match, on every page: exact up to 10,000; above that, on "
            "PostgreSQL, the database's estimate from its table statistics (see docs/scale.md)."
        ),
    )

    @classmethod
    def from_page(cls, page: Page) -> ApiKeyConnection:
        """A page of rows of :data:`API_KEY_FIELDS`."""
        return cls(
            nodes=ApiKey.list_from_rows(page.rows), page_info=PageInfo.of(page), count=page.count
        )


@strawberry.input(description="A new API key.")
class CreateApiKeyInput:
    """What an admin chooses for a new key; everything else is set by the service."""

    name: str = strawberry.field(description="1 to 100 characters, trimmed.")
    lifetime_days: int | None = strawberry.field(
        default=None, description="1 to 3650; absent or null: the key never expires."
    )
    scopes: list[str] | None = strawberry.field(
        default=None,
        description=(
            "Names from apiScopes; absent or null: every scope but keys:verify. An unknown "
            "scope is BAD_USER_INPUT with extensions.field scopes."
        ),
    )
    allowed_cidrs: list[str] | None = strawberry.field(
        default=None,
        description=(
            "IPv4 or IPv6 networks in CIDR notation (a bare address is a network of one), at "
            "most 20; absent, null or empty: anywhere. Calls from elsewhere are refused 403."
        ),
    )
    rate_limit: RateLimitInput | None = strawberry.field(
        default=None, description="Absent or null: no rate limit."
    )
    quota: QuotaInput | None = strawberry.field(
        default=None, description="Absent or null: no quota."
    )


@strawberry.input(description="What to change in a key; absent or null fields stay as they are.")
class UpdateApiKeyInput:
    """The fields of a key an admin may change; the rest (secret, expiry) has its own mutation."""

    name: str | None = strawberry.field(default=None, description="1 to 100 characters, trimmed.")
    scopes: list[str] | None = strawberry.field(
        default=None, description="Names from apiScopes; empty: no scope (only whoami works)."
    )
    allowed_cidrs: list[str] | None = strawberry.field(
        default=None, description="Networks in CIDR notation, at most 20; empty: anywhere."
    )
    rate_limit: RateLimitInput | None = strawberry.field(
        default=strawberry.UNSET, description="Absent: unchanged; null: removed."
    )
    quota: QuotaInput | None = strawberry.field(
        default=strawberry.UNSET, description="Absent: unchanged; null: removed."
    )


@strawberry.input(description="The organization's settings for its API keys.")
class OrganizationSettingsInput:
    """What an admin may set for the whole organization."""

    key_inactivity_days: int | None = strawberry.field(
        default=strawberry.UNSET,
        description=(
            "1 to 3650: disable keys neither used nor created for that many days; null: "
            "never; absent: unchanged."
        ),
    )


@strawberry.type(description="A permission an API key may grant.")
class ApiScope:
    """One scope of the Workflow Automation API."""

    name: str
    description: str
    granted_by_default: bool = strawberry.field(
        default=True,
        description="Granted to a key created without a list of scopes (keys:verify is not).",
    )


strawberry.enum(AuditAction, name="AuditAction", description="What an audit event records.")


def _count_of(detail: dict[str, object] | None) -> int | None:
    count = (detail or {}).get("count")
    return count if isinstance(count, int) else None


@strawberry.type(description="One change to a key, or one sign-in or sign-out.")
class AuditEvent:
    """An audit event: who did what, to which key, when and from where; never a secret."""

    id: strawberry.ID
    action: AuditAction
    key_id: strawberry.ID | None = strawberry.field(description="The key concerned, if any.")
    actor_email: str | None = strawberry.field(
        description=(
            "Who acted (for sign-ins: the account tried; 'wfa-keys command line' for a "
            "change made with the command line); null when unknown."
        )
    )
    client_ip: str | None
    created_at: datetime
    count: int | None = strawberry.field(
        default=None,
        description=(
            "How many times it happened: LOGIN_THROTTLED is recorded once per email and "
            "address per throttle window, counting the refused attempts, and once the "
            "address's own limit has tripped, once per address (no actor email) whatever the "
            "emails tried; null for other actions."
        ),
    )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AuditEvent:
        """The API view of a row of :data:`AUDIT_EVENT_FIELDS`."""
        return cls(
            id=strawberry.ID(str(row["id"])),
            action=row["action"],
            key_id=strawberry.ID(row["key_id"]) if row["key_id"] is not None else None,
            actor_email=row["actor_email"],
            client_ip=row["client_ip"],
            created_at=row["created_at"],
            count=_count_of(row["detail"]),
        )


#: The columns an audit page reads.
AUDIT_EVENT_FIELDS = (
    "id",
    "action",
    "key_id",
    "actor_email",
    "client_ip",
    "created_at",
    "detail",
)


@strawberry.type(description="A page of audit events, newest first.")
class AuditEventConnection:
    """A page of audit events; the total is counted only when the client selects it."""

    nodes: list[AuditEvent]
    page_info: PageInfo
    count: strawberry.Private[Count]
    total_count: int = strawberry.field(
        resolver=_total_count,
        description=(
            "How many events match, on every page: exact up to 10,000; above that, on "
            "PostgreSQL, the database's estimate from its table statistics (see docs/scale.md)."
        ),
    )

    @classmethod
    def from_page(cls, page: Page) -> AuditEventConnection:
        """A page of rows of :data:`AUDIT_EVENT_FIELDS`."""
        nodes = [AuditEvent.from_row(row) for row in page.rows]
        return cls(nodes=nodes, page_info=PageInfo.of(page), count=page.count)


# Usage analytics of the organization (organizationUsage).


@strawberry.type(description="One key's calls over a range; a deleted key keeps its keyId.")
class KeyUsage:
    """A key's totals over the range of ``organizationUsage``."""

    api_key: ApiKey | None = strawberry.field(description="Null once the key is deleted.")
    key_id: str
    total: int
    success: int


@strawberry.type(description="The organization's calls per bucket, and its busiest keys.")
class OrganizationUsage:
    """``organizationUsage``: the organization's buckets and its top keys by calls."""

    buckets: list[UsageBucket]
    top_keys: list[KeyUsage] = strawberry.field(description="Most calls first.")
