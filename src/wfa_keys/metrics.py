"""Prometheus metrics at ``/metrics`` (``WFA_METRICS=on``), correct under ``--workers``.

Counted: authentication outcomes by reason and warm hits (through
:class:`wfa_auth.AuthObserver`), the time of each slow secret verification, key-change
notifications received, and GraphQL operations by root field. ``wfa-keys serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before any worker starts, so that every
worker writes its counts there and each scrape, whichever worker answers it, adds them up.
Labels only ever take values from fixed sets (error codes, schema field names), never from
client input, so a client cannot grow the number of series.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache

from graphql import FieldNode, OperationDefinitionNode
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from strawberry.extensions import SchemaExtension

from wfa_auth import CALL_OUTCOMES

__all__ = [
    "GraphQLOperationMetrics",
    "Metrics",
    "MetricsObserver",
    "metrics",
    "metrics_endpoint",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class Metrics:
    """The service's metrics, created once per process (see :func:`metrics`)."""

    registry: CollectorRegistry
    authentications: Counter
    verification_seconds: Histogram
    key_changes: Counter
    graphql_operations: Counter
    calls: Counter


@cache
def metrics() -> Metrics:
    """This process's metrics. In multiprocess mode the values live in the shared directory."""
    registry = CollectorRegistry(auto_describe=True)
    return Metrics(
        registry=registry,
        authentications=Counter(
            "wfa_keys_api_authentications",
            "API requests by outcome (authenticated or refused) and reason (warm, cold or the "
            "error code; too_many_attempts when throttled).",
            ["outcome", "reason"],
            registry=registry,
        ),
        verification_seconds=Histogram(
            "wfa_keys_secret_verification_seconds",
            "Time of each slow (argon2) Key Secret verification.",
            buckets=(0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28),
            registry=registry,
        ),
        key_changes=Counter(
            "wfa_keys_key_changes_received",
            "Key changes applied to this process's caches, by how they arrived (notify, poll, "
            "catch_up).",
            ["via"],
            registry=registry,
        ),
        graphql_operations=Counter(
            "wfa_keys_graphql_operations",
            "GraphQL operations executed, by operation type and root field.",
            ["type", "field"],
            registry=registry,
        ),
        calls=Counter(
            "wfa_keys_api_calls",
            "API calls of known keys by outcome (success, rate_limited, quota_exceeded, "
            "insufficient_scope, ip_not_allowed, disabled, expired, invalid_secret), "
            "counted when each 10-second batch of call analytics is written.",
            ["outcome"],
            registry=registry,
        ),
    )


class MetricsObserver:
    """A :class:`wfa_auth.AuthObserver` that counts into :func:`metrics`."""

    def __init__(self, target: Metrics | None = None) -> None:
        self.metrics = target or metrics()

    def on_authenticated(self, *, warm: bool) -> None:
        """Count a request let through; ``warm`` is a cache hit."""
        self.metrics.authentications.labels("authenticated", "warm" if warm else "cold").inc()

    def on_refused(self, error: str) -> None:
        """Count a refusal by its error code."""
        self.metrics.authentications.labels("refused", error[:64]).inc()

    def on_verification(self, seconds: float) -> None:
        """Record how long an argon2 verification took."""
        self.metrics.verification_seconds.observe(seconds)

    def on_calls_recorded(self, totals: Sequence[int]) -> None:
        """Count a written batch of call analytics by outcome (never by key)."""
        for outcome, count in zip(CALL_OUTCOMES, totals, strict=True):
            if count:
                self.metrics.calls.labels(outcome).inc(count)

    def on_key_change(self, via: str) -> None:
        """Count a key change applied by the change listener."""
        self.metrics.key_changes.labels(via).inc()


class GraphQLOperationMetrics(SchemaExtension):
    """Counts each executed operation by type and by root field (``createApiKey``).

    Root fields rather than the operation's name: the name is whatever the client wrote,
    while the fields that reach execution were validated against the schema.
    """

    def on_execute(self) -> Iterator[None]:
        yield
        context = self.execution_context
        document = context.graphql_document
        if document is None:
            return
        counter = metrics().graphql_operations
        for definition in document.definitions:
            if not isinstance(definition, OperationDefinitionNode):
                continue
            name = definition.name.value if definition.name else None
            if context.operation_name is not None and name != context.operation_name:
                continue
            kind = definition.operation.value
            for selection in definition.selection_set.selections:
                if isinstance(selection, FieldNode):
                    counter.labels(kind, selection.name.value).inc()
            return


async def metrics_endpoint(_request: Request) -> Response:
    """``GET /metrics``: every worker's counts when ``PROMETHEUS_MULTIPROC_DIR`` is set."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = metrics().registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
