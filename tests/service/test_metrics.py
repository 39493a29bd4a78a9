"""The metrics: the AuthObserver counts, and /metrics serves them in Prometheus's format."""

from __future__ import annotations

import httpx2
from prometheus_client import generate_latest
from tortoise.context import TortoiseContext

from wfa_auth import AuthObserver
from wfa_keys.app import create_app
from wfa_keys.metrics import MetricsObserver, metrics
from wfa_keys.settings import Settings


def sample(name: str, **labels: str) -> float:
    value = metrics().registry.get_sample_value(name, labels)
    return value or 0.0


def test_the_observer_counts_outcomes_reasons_and_verification_time() -> None:
    observer: AuthObserver = MetricsObserver()
    warm = sample("wfa_keys_api_authentications_total", outcome="authenticated", reason="warm")
    throttled = sample(
        "wfa_keys_api_authentications_total", outcome="refused", reason="too_many_attempts"
    )
    verifications = sample("wfa_keys_secret_verification_seconds_count")

    observer.on_authenticated(warm=True)
    observer.on_refused("too_many_attempts")
    observer.on_verification(0.03)

    assert (
        sample("wfa_keys_api_authentications_total", outcome="authenticated", reason="warm")
        == warm + 1
    )
    assert (
        sample("wfa_keys_api_authentications_total", outcome="refused", reason="too_many_attempts")
        == throttled + 1
    )
    assert sample("wfa_keys_secret_verification_seconds_count") == verifications + 1


async def test_metrics_endpoint_serves_the_text_format(db: TortoiseContext) -> None:
    app = create_app(Settings(database_url="unused", metrics=True))
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://t"
    ) as c:
        await c.post("/graphql", json={"query": "{ __typename }"})
        response = await c.get("/metrics")
    assert response.status_code == 200
    assert b"wfa_keys_graphql_operations_total" in generate_latest(metrics().registry)
    assert 'wfa_keys_graphql_operations_total{field="__typename",type="query"}' in response.text
