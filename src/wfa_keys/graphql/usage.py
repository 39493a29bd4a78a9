"""GraphQL types of usage control: rate limits, quotas, and usage buckets by outcome."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry.types import Info

from wfa_auth import Quota as QuotaValue
from wfa_auth import RateLimit as RateLimitValue
from wfa_auth import quota_window
from wfa_keys.graphql.context import Context
from wfa_keys.graphql.errors import ServiceUnavailable, domain_errors
from wfa_keys.usage import Granularity, UsageCounts, key_usage, usage_range

logger = logging.getLogger("wfa_keys.graphql")

__all__ = [
    "Quota",
    "QuotaInput",
    "QuotaPeriod",
    "RateLimit",
    "RateLimitInput",
    "UsageBucket",
    "UsageGranularity",
    "limits_from_row",
    "resolve_key_usage",
]

_USAGE_FIELDS = {"since": "since", "until": "until", "top": "top"}


@strawberry.enum(description="A quota's period: a UTC calendar day or month.")
class QuotaPeriod(Enum):
    """DAY: from 00:00 UTC. MONTH: from the 1st, 00:00 UTC."""

    DAY = "day"
    MONTH = "month"


@strawberry.enum(description="The width of a usage bucket.")
class UsageGranularity(Enum):
    """HOUR or DAY (UTC)."""

    HOUR = "hour"
    DAY = "day"


@strawberry.input(description="At most `requests` calls in any `perSeconds` seconds.")
class RateLimitInput:
    """A rate limit to set on a key."""

    requests: int = strawberry.field(description="1 to 1,000,000.")
    per_seconds: int = strawberry.field(description="1 to 86,400.")

    def value(self) -> RateLimitValue:
        """The service layer's value."""
        return RateLimitValue(requests=self.requests, per_seconds=self.per_seconds)


@strawberry.input(description="At most `requests` calls per UTC day or month.")
class QuotaInput:
    """A quota to set on a key."""

    requests: int = strawberry.field(description="1 to 1,000,000,000.")
    period: QuotaPeriod

    def value(self) -> QuotaValue:
        """The service layer's value."""
        return QuotaValue(requests=self.requests, period=self.period.value)


@strawberry.type(
    description=(
        "At most `requests` calls in any `perSeconds` seconds; calls beyond are refused 429 "
        "rate_limited with Retry-After."
    )
)
class RateLimit:
    """A key's rate limit."""

    requests: int
    per_seconds: int


async def _quota_used(root: Quota, info: Info[Context, Any]) -> int:
    bucket, slot, _ = quota_window(
        root.key_id, QuotaValue(root.requests, root.period.value), time.time()
    )
    try:
        return await info.context.services.counters.count(bucket, slot)
    except Exception as exc:
        logger.error("counter store unavailable (%s)", type(exc).__name__)
        raise ServiceUnavailable(info.context.request_id) from None


@strawberry.type(
    description=(
        "At most `requests` calls per UTC period; calls beyond are refused 429 "
        "quota_exceeded with Retry-After until the period ends."
    )
)
class Quota:
    """A key's quota, with what it has used of the current period."""

    key_id: strawberry.Private[str]
    requests: int
    period: QuotaPeriod
    resets_at: datetime = strawberry.field(description="When the current period ends.")
    used: int = strawberry.field(
        resolver=_quota_used,
        description=(
            "Calls counted in the current period, across every server process (exact when "
            "the key is idle; while calls run, up to 1% more, units leased by processes)."
        ),
    )


def limits_from_row(
    key_id: str, row: Any, get: Any = getattr
) -> tuple[RateLimit | None, Quota | None]:
    """The key's rate limit and quota from a model or a row (``get`` reads a column)."""
    rate: RateLimit | None = None
    quota: Quota | None = None
    requests, per_seconds = get(row, "rate_limit_requests"), get(row, "rate_limit_per_seconds")
    if requests is not None and per_seconds is not None:
        rate = RateLimit(requests=requests, per_seconds=per_seconds)
    quota_requests, period = get(row, "quota_requests"), get(row, "quota_period")
    if quota_requests is not None and period is not None:
        _, _, ends = quota_window(key_id, QuotaValue(quota_requests, period), time.time())
        quota = Quota(
            key_id=key_id,
            requests=quota_requests,
            period=QuotaPeriod(period),
            resets_at=datetime.fromtimestamp(ends, UTC),
        )
    return rate, quota


@strawberry.type(description="Calls in one bucket (an hour or a day), by outcome.")
class UsageBucket:
    """The calls of one bucket; every outcome is a count, zero included."""

    start: datetime
    total: int
    success: int
    rate_limited: int
    quota_exceeded: int
    insufficient_scope: int
    ip_not_allowed: int
    disabled: int
    expired: int
    invalid_secret: int = strawberry.field(
        description="Refused for a wrong secret of this (known) Key ID."
    )

    @classmethod
    def of(cls, counts: UsageCounts) -> UsageBucket:
        """The API view of a bucket."""
        c = counts.counts
        return cls(
            start=counts.start,
            total=counts.total,
            success=c[0],
            rate_limited=c[1],
            quota_exceeded=c[2],
            insufficient_scope=c[3],
            ip_not_allowed=c[4],
            disabled=c[5],
            expired=c[6],
            invalid_secret=c[7],
        )


def usage_starts(
    context: Context, since: datetime, until: datetime | None, granularity: UsageGranularity
) -> tuple[list[datetime], Granularity]:
    """The bucket starts of a usage query, or BAD_USER_INPUT."""
    width = Granularity(granularity.value)
    with domain_errors(_USAGE_FIELDS, request_id=context.request_id):
        return usage_range(since, until, width), width


async def resolve_key_usage(
    info: Info[Context, Any],
    key_id: str,
    since: datetime,
    until: datetime | None,
    granularity: UsageGranularity,
) -> list[UsageBucket]:
    """The buckets of one key of the caller's organization."""
    context = info.context
    starts, width = usage_starts(context, since, until, granularity)
    counts = await key_usage(context.actor.organization_id, key_id, starts, width)
    return [UsageBucket.of(bucket) for bucket in counts]
