"""The API under /api with rate limits, quotas and call analytics, as ``serve`` wires it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from tortoise.context import TortoiseContext

from support.keys import basic
from support.settings import cheap_settings
from wfa_auth import generate_key_id, generate_key_secret
from wfa_keys.api import create_api
from wfa_keys.counters import DatabaseCounterStore
from wfa_keys.crypto import hasher_for
from wfa_keys.metrics import Metrics, MetricsObserver
from wfa_keys.models import ApiKey, KeyUsage, Organization, Role, User
from wfa_keys.usage import TortoiseCallSink

SETTINGS = cheap_settings(database_url="unused")


async def make_key(**fields: Any) -> tuple[ApiKey, str]:
    org, _ = await Organization.get_or_create(name="Acme", has_workflow_automation=True)
    owner, _ = await User.get_or_create(
        email="ada@acme.test",
        defaults={"password_hash": "unused", "role": Role.ADMIN, "organization": org},
    )
    secret = generate_key_secret()
    fields.setdefault("scopes", ["workflows:read"])
    key = await ApiKey.create(
        key_id=generate_key_id(),
        name="Export",
        secret_hash=hasher_for(SETTINGS).hash(secret),
        owner=owner,
        organization=org,
        allowed_cidrs=fields.pop("allowed_cidrs", []),
        **fields,
    )
    return key, secret


@pytest.fixture
def observed() -> MetricsObserver:
    from prometheus_client import CollectorRegistry, Counter

    registry = CollectorRegistry()
    calls = Counter("calls", "calls", ["outcome"], registry=registry)
    return MetricsObserver(Metrics(registry, None, None, None, None, calls))  # type: ignore[arg-type]


@pytest.fixture
async def api(db: TortoiseContext, observed: MetricsObserver) -> AsyncIterator[Any]:
    middleware = create_api(
        SETTINGS,
        counter_store=DatabaseCounterStore(),
        call_sink=TortoiseCallSink(on_recorded=observed.on_calls_recorded),
    )
    yield middleware
    await middleware.flush_usage()


def client(api: Any, ip: str = "10.1.2.3") -> httpx2.AsyncClient:
    transport = httpx2.ASGITransport(app=Starlette(routes=[Mount("/api", app=api)]), client=(ip, 1))
    return httpx2.AsyncClient(transport=transport, base_url="http://testserver")


async def test_each_outcome_of_a_known_key_is_counted_in_its_hour(
    api: Any, observed: MetricsObserver
) -> None:
    key, secret = await make_key(rate_limit_requests=4, rate_limit_per_seconds=60)
    fenced, fenced_secret = await make_key(allowed_cidrs=["192.0.2.0/24"])
    off, off_secret = await make_key(enabled=False)
    old, old_secret = await make_key(expires_at=datetime.now(UTC) - timedelta(days=1))
    async with client(api) as http:
        assert (await http.get("/api/v1/whoami", headers=basic(key.key_id, secret))).is_success
        assert (await http.get("/api/v1/workflows", headers=basic(key.key_id, secret))).is_success
        scope = await http.post("/api/v1/workflows", headers=basic(key.key_id, secret), json={})
        assert scope.json()["error"] == "insufficient_scope"
        wrong = await http.get("/api/v1/whoami", headers=basic(key.key_id, generate_key_secret()))
        assert wrong.json()["error"] == "invalid_credentials"
        assert (await http.get("/api/v1/whoami", headers=basic(key.key_id, secret))).is_success
        limited = await http.get("/api/v1/whoami", headers=basic(key.key_id, secret))
        assert limited.status_code == 429
        assert limited.json()["error"] == "rate_limited"
        assert limited.headers["ratelimit-policy"] == '"rate";q=4;w=60'
        assert (
            await http.get("/api/v1/whoami", headers=basic(fenced.key_id, fenced_secret))
        ).status_code == 403
        assert (
            await http.get("/api/v1/whoami", headers=basic(off.key_id, off_secret))
        ).status_code == 401
        assert (
            await http.get("/api/v1/whoami", headers=basic(old.key_id, old_secret))
        ).status_code == 401
        # Neither an unknown Key ID nor the token exchange's success is a call of a key.
        await http.get("/api/v1/whoami", headers=basic(generate_key_id(), secret))
    await api.flush_usage()
    rows = {
        row["key_id"]: row
        for row in await KeyUsage.all().values(
            "key_id",
            "hour",
            "success",
            "rate_limited",
            "insufficient_scope",
            "invalid_secret",
            "ip_not_allowed",
            "disabled",
            "expired",
            "quota_exceeded",
        )
    }
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    mine = rows[key.key_id]
    assert mine["hour"] == hour
    assert (mine["success"], mine["insufficient_scope"], mine["invalid_secret"]) == (3, 1, 1)
    assert mine["rate_limited"] == 1
    assert rows[fenced.key_id]["ip_not_allowed"] == 1
    assert rows[off.key_id]["disabled"] == 1
    assert rows[old.key_id]["expired"] == 1
    assert len(rows) == 4
    counted = {
        sample.labels["outcome"]: sample.value
        for sample in next(iter(observed.metrics.calls.collect())).samples
        if sample.name.endswith("_total")
    }
    assert counted == {
        "success": 3,
        "insufficient_scope": 1,
        "invalid_secret": 1,
        "rate_limited": 1,
        "ip_not_allowed": 1,
        "disabled": 1,
        "expired": 1,
    }


async def test_a_quota_refuses_429_quota_exceeded_until_the_utc_day_ends(api: Any) -> None:
    key, secret = await make_key(quota_requests=2, quota_period="day")
    async with client(api) as http:
        answers = [
            await http.get("/api/v1/whoami", headers=basic(key.key_id, secret)) for _ in range(3)
        ]
    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[2]
    assert refused.json() == {
        "error": "quota_exceeded",
        "message": "This API key has used its quota for the period.",
    }
    now = datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    assert abs(int(refused.headers["retry-after"]) - (midnight - now).total_seconds()) <= 2
    assert refused.headers["ratelimit-policy"] == '"quota";q=2;w=86400'
    assert refused.headers["ratelimit"].startswith('"quota";r=0;t=')


async def test_successive_writes_of_one_hour_add_up(api: Any) -> None:
    key, secret = await make_key()
    async with client(api) as http:
        await http.get("/api/v1/whoami", headers=basic(key.key_id, secret))
        await api.flush_usage()
        await http.get("/api/v1/whoami", headers=basic(key.key_id, secret))
        await http.get("/api/v1/whoami", headers=basic(key.key_id, secret))
    await api.flush_usage()
    row = await KeyUsage.get(key_id=key.key_id)
    assert row.success == 3
