"""Issue 21 through GraphQL: rate limits and quotas on keys, usage and organizationUsage."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from support.gql import Api, errors_of
from wfa_auth import Quota, quota_window
from wfa_keys.graphql import GraphQLApp
from wfa_keys.models import ApiKey, AuditEvent, Organization
from wfa_keys.usage import COLUMNS, TortoiseCallSink

LIMITS = "id rateLimit { requests perSeconds } quota { requests period used resetsAt }"
CREATE = f"""
mutation Create($input: CreateApiKeyInput!) {{
  createApiKey(input: $input) {{ apiKey {{ {LIMITS} }} }}
}}
"""
UPDATE = f"""
mutation Update($id: ID!, $input: UpdateApiKeyInput!) {{
  updateApiKey(id: $id, input: $input) {{ {LIMITS} }}
}}
"""
GET = f"query Get($id: ID!) {{ apiKey(id: $id) {{ {LIMITS} }} }}"
LIST = f"{{ apiKeys {{ nodes {{ {LIMITS} }} }} }}"
BUCKET = (
    "start total success rateLimited quotaExceeded insufficientScope ipNotAllowed disabled "
    "expired invalidSecret"
)
USAGE = f"""
query Usage($id: ID!, $since: DateTime!, $until: DateTime, $granularity: UsageGranularity) {{
  apiKey(id: $id) {{
    usage(since: $since, until: $until, granularity: $granularity) {{ {BUCKET} }}
  }}
}}
"""
ORG_USAGE = f"""
query Org($since: DateTime!, $until: DateTime, $granularity: UsageGranularity, $top: Int) {{
  organizationUsage(since: $since, until: $until, granularity: $granularity, top: $top) {{
    buckets {{ {BUCKET} }}
    topKeys {{ keyId total success apiKey {{ id name }} }}
  }}
}}
"""


async def create(api: Api, **input: Any) -> dict[str, Any]:
    body = await api(CREATE, input={"name": "CI", **input})
    assert "errors" not in body, body
    key: dict[str, Any] = body["data"]["createApiKey"]["apiKey"]
    return key


def _utc_day_end() -> str:
    now = datetime.now(UTC)
    end = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    return end.isoformat()


async def test_a_key_is_created_with_a_rate_limit_and_a_quota(admin: Api) -> None:
    key = await create(
        admin,
        rateLimit={"requests": 100, "perSeconds": 10},
        quota={"requests": 1000, "period": "DAY"},
    )
    assert key["rateLimit"] == {"requests": 100, "perSeconds": 10}
    assert key["quota"] == {
        "requests": 1000,
        "period": "DAY",
        "used": 0,
        "resetsAt": _utc_day_end(),
    }
    stored = await ApiKey.get(key_id=key["id"])
    assert (stored.rate_limit_requests, stored.rate_limit_per_seconds) == (100, 10)
    assert (stored.quota_requests, stored.quota_period) == (1000, "day")
    listed = await admin(LIST)
    assert listed["data"]["apiKeys"]["nodes"][0]["rateLimit"] == key["rateLimit"]


async def test_a_key_created_without_limits_has_none(admin: Api) -> None:
    key = await create(admin)
    assert key["rateLimit"] is None
    assert key["quota"] is None


async def test_update_leaves_absent_limits_unchanged_and_removes_null_ones(admin: Api) -> None:
    key = await create(
        admin,
        rateLimit={"requests": 100, "perSeconds": 10},
        quota={"requests": 1000, "period": "DAY"},
    )
    renamed = await admin(UPDATE, id=key["id"], input={"name": "Renamed"})
    assert renamed["data"]["updateApiKey"]["rateLimit"] == {"requests": 100, "perSeconds": 10}
    assert renamed["data"]["updateApiKey"]["quota"]["requests"] == 1000
    changed = await admin(
        UPDATE,
        id=key["id"],
        input={"rateLimit": {"requests": 5, "perSeconds": 60}, "quota": None},
    )
    assert "errors" not in changed, changed
    assert changed["data"]["updateApiKey"]["rateLimit"] == {"requests": 5, "perSeconds": 60}
    assert changed["data"]["updateApiKey"]["quota"] is None
    removed = await admin(UPDATE, id=key["id"], input={"rateLimit": None})
    assert removed["data"]["updateApiKey"]["rateLimit"] is None
    events: list[Any] = (
        await AuditEvent.filter(action="key_updated")
        .order_by("id")
        .values_list("detail", flat=True)
    )
    assert events == [
        {"changed": ["name"]},
        {"changed": ["rateLimit", "quota"]},
        {"changed": ["rateLimit"]},
    ]


def _rate(requests: int = 10, per_seconds: int = 10) -> dict[str, Any]:
    return {"rateLimit": {"requests": requests, "perSeconds": per_seconds}}


def _quota(requests: int = 10, period: str = "DAY") -> dict[str, Any]:
    return {"quota": {"requests": requests, "period": period}}


@pytest.mark.parametrize(
    ("input", "field"),
    [
        (_rate(requests=0), "input.rateLimit.requests"),
        (_rate(requests=1_000_001), "input.rateLimit.requests"),
        (_rate(per_seconds=0), "input.rateLimit.perSeconds"),
        (_rate(per_seconds=86_401), "input.rateLimit.perSeconds"),
        (_quota(requests=0), "input.quota.requests"),
        (_quota(requests=10**9 + 1), "input.quota.requests"),
    ],
)
async def test_out_of_range_limits_are_bad_user_input_and_change_nothing(
    admin: Api, input: dict[str, Any], field: str
) -> None:
    body = await admin(CREATE, input={"name": "CI", **input})
    assert errors_of(body) == [("BAD_USER_INPUT", field)]
    key = await create(admin)
    body = await admin(UPDATE, id=key["id"], input=input)
    assert errors_of(body) == [("BAD_USER_INPUT", field)]
    assert await ApiKey.all().count() == 1
    assert await AuditEvent.filter(action="key_updated").count() == 0


async def test_quota_used_is_what_the_counter_store_counted_this_period(
    admin: Api, gql_app: GraphQLApp
) -> None:
    key = await create(admin, quota={"requests": 1000, "period": "MONTH"})
    bucket, slot, _ = quota_window(key["id"], Quota(1000, "month"), time.time())
    await gql_app.services.counters.take(bucket, slot, 7, limit=1000, span=1)
    body = await admin(GET, id=key["id"])
    assert body["data"]["apiKey"]["quota"]["used"] == 7


async def _usage_row(
    key_id: str, hour: datetime, organization: str = "Acme", **counts: int
) -> None:
    """Counts written as the service writes them: through the flush (rollups included)."""
    organization_id = str((await Organization.get(name=organization)).id)
    values = [counts.get(column, 0) for column in COLUMNS]
    await TortoiseCallSink().record_calls({(key_id, organization_id, hour): values})


def _hour(hours_ago: int) -> datetime:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(hours=hours_ago)


async def test_usage_gives_every_hour_by_outcome_empty_hours_included(admin: Api) -> None:
    key = await create(admin)
    await _usage_row(key["id"], _hour(2), success=5, rate_limited=2, invalid_secret=1)
    await _usage_row(key["id"], _hour(0), success=1, insufficient_scope=3)
    body = await admin(USAGE, id=key["id"], since=_hour(3).isoformat())
    assert "errors" not in body, body
    buckets = body["data"]["apiKey"]["usage"]
    assert [b["start"] for b in buckets] == [_hour(h).isoformat() for h in (3, 2, 1, 0)]
    assert [b["total"] for b in buckets] == [0, 8, 0, 4]
    assert buckets[1] | {"start": None} == {
        "start": None,
        "total": 8,
        "success": 5,
        "rateLimited": 2,
        "quotaExceeded": 0,
        "insufficientScope": 0,
        "ipNotAllowed": 0,
        "disabled": 0,
        "expired": 0,
        "invalidSecret": 1,
    }
    assert buckets[3]["insufficientScope"] == 3


async def test_usage_by_day_adds_up_the_hours_of_each_utc_day(admin: Api) -> None:
    key = await create(admin)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    await _usage_row(key["id"], today - timedelta(hours=23), success=2)
    await _usage_row(key["id"], today - timedelta(hours=1), success=3, expired=1)
    await _usage_row(key["id"], today, disabled=4)
    body = await admin(
        USAGE, id=key["id"], since=(today - timedelta(days=1)).isoformat(), granularity="DAY"
    )
    buckets = body["data"]["apiKey"]["usage"]
    assert [(b["total"], b["success"], b["expired"], b["disabled"]) for b in buckets] == [
        (6, 5, 1, 0),
        (4, 0, 0, 4),
    ]


@pytest.mark.parametrize(
    ("days", "granularity", "field"),
    [(32, "HOUR", "since"), (401, "DAY", "since"), (-1, "HOUR", "until")],
)
async def test_usage_over_too_long_a_range_is_bad_user_input(
    admin: Api, days: int, granularity: str, field: str
) -> None:
    key = await create(admin)
    now = datetime.now(UTC)
    since, until = (now - timedelta(days=days), now) if days > 0 else (now, now - timedelta(days=1))
    variables = {"since": since.isoformat(), "until": until.isoformat()}
    body = await admin(USAGE, id=key["id"], granularity=granularity, **variables)
    assert errors_of(body) == [("BAD_USER_INPUT", field)]
    body = await admin(ORG_USAGE, granularity=granularity, **variables)
    assert errors_of(body) == [("BAD_USER_INPUT", field)]


async def test_organization_usage_totals_the_buckets_and_ranks_keys_deleted_ones_included(
    admin: Api, other_admin: Api
) -> None:
    busy = await create(admin, name="Busy")
    quiet = await create(admin, name="Quiet")
    await _usage_row(busy["id"], _hour(30), success=10, rate_limited=5)
    await _usage_row(quiet["id"], _hour(1), success=3)
    await _usage_row("wfak_deletedkeydeletedkey", _hour(2), success=7, invalid_secret=1)
    outsider = await create(other_admin, name="Outsider")
    await _usage_row(outsider["id"], _hour(1), organization="Globex", success=99)
    since = (datetime.now(UTC) - timedelta(days=6)).isoformat()
    body = await admin(ORG_USAGE, since=since)
    assert "errors" not in body, body
    usage = body["data"]["organizationUsage"]
    assert len(usage["buckets"]) == 7
    assert sum(b["total"] for b in usage["buckets"]) == 26
    assert sum(b["success"] for b in usage["buckets"]) == 20
    assert usage["topKeys"] == [
        {
            "keyId": busy["id"],
            "total": 15,
            "success": 10,
            "apiKey": {"id": busy["id"], "name": "Busy"},
        },
        {"keyId": "wfak_deletedkeydeletedkey", "total": 8, "success": 7, "apiKey": None},
        {
            "keyId": quiet["id"],
            "total": 3,
            "success": 3,
            "apiKey": {"id": quiet["id"], "name": "Quiet"},
        },
    ]
    top_one = await admin(ORG_USAGE, since=since, top=1)
    assert [k["keyId"] for k in top_one["data"]["organizationUsage"]["topKeys"]] == [busy["id"]]
    assert errors_of(await admin(ORG_USAGE, since=since, top=0)) == [("BAD_USER_INPUT", "top")]


async def test_another_organizations_key_usage_is_not_found(admin: Api, other_admin: Api) -> None:
    key = await create(admin)
    await _usage_row(key["id"], _hour(0), success=3)
    body = await other_admin(USAGE, id=key["id"], since=_hour(1).isoformat())
    assert body["data"]["apiKey"] is None
