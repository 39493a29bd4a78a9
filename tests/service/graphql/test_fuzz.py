"""Schemathesis fuzzes every operation of the committed ``schema.graphql`` against the app.

Schemathesis generates the queries (from the committed SDL: the server's introspection is off
in production mode); the test sends them to the whole ASGI app as a signed-in admin and checks
its own rules instead of schemathesis's ``not_a_server_error``, which counts every expected,
coded resolver error as a server error (STACK-NOTES): no 5xx, always JSON, and every error
carries one of the codes the API documents. ``logout`` is left out, or the rest of the run
would be anonymous.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis.generation.case import Case
from tortoise.context import TortoiseContext

from support.bad_bytes import bad_bodies, examples
from support.gql import LOGIN, PASSWORD
from support.settings import cheap_settings
from wfa_keys.app import create_app
from wfa_keys.models import AuditEvent, Role
from wfa_keys.users import create_user

SCHEMA = Path(__file__).parents[3] / "schema.graphql"
EXAMPLES_PER_OPERATION = 100
KNOWN_CODES = {
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "SUBSCRIPTION_REQUIRED",
    "NOT_FOUND",
    "BAD_USER_INPUT",
    "RATE_LIMITED",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "QUERY_TOO_DEEP",
    "TOO_MANY_ALIASES",
    "TOO_MANY_TOKENS",
    "INTROSPECTION_DISABLED",
}


def generated_cases() -> list[Case[Any]]:
    """Up to EXAMPLES_PER_OPERATION generated queries for each operation but ``logout``."""
    schema = schemathesis.graphql.from_path(SCHEMA)
    cases: list[Case[Any]] = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        if operation.label.endswith(".logout"):
            continue

        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def collect(case: Case[Any]) -> None:
            cases.append(case)

        collect()
    return cases


async def no_dns(host: str, port: int) -> list[str]:
    """The webhook guard's resolver here: fuzzed host names never leave the machine."""
    raise OSError(f"no DNS in tests ({host}:{port})")


async def test_fuzzed_operations_get_data_or_a_coded_error_never_a_server_error(
    db: TortoiseContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    del db
    monkeypatch.setattr("wfa_keys.graphql.context.system_resolver", no_dns)
    settings = cheap_settings()
    await create_user(
        settings,
        email="admin@acme.example",
        password=PASSWORD,
        organization="Acme",
        role=Role.ADMIN,
    )
    cases = generated_cases()
    labels = {case.operation.label for case in cases}
    transport = httpx2.ASGITransport(app=create_app(settings))
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
        login = await client.post(
            "/graphql",
            json={
                "query": LOGIN,
                "variables": {"email": "admin@acme.example", "password": PASSWORD},
            },
        )
        assert "errors" not in login.json()

        failures: list[str] = []
        for case in cases:
            query: Any = case.body  # schemathesis's GraphQL body is the query text
            response = await client.post("/graphql", json={"query": query})
            problem = _problem(response)
            if problem:
                failures.append(f"{case.operation.label}: {problem}\n{query}")

        still_signed_in = await client.post("/graphql", json={"query": "{ me { email } }"})

    assert not failures, "\n\n".join(failures[:5])
    # Every query and mutation but logout was exercised.
    assert labels == {
        "Query.me",
        "Query.apiKeys",
        "Query.apiKey",
        "Query.auditEvents",
        "Query.organizationUsage",
        "Query.apiScopes",
        "Mutation.login",
        "Mutation.createApiKey",
        "Mutation.setApiKeyEnabled",
        "Mutation.regenerateApiKey",
        "Mutation.deleteApiKey",
        "Mutation.updateApiKey",
        "Mutation.revokePreviousSecret",
        "Mutation.setOrganizationSettings",
        # Webhooks (issue 23).
        "Query.webhookEndpoints",
        "Query.webhookEventTypes",
        "Query.webhookDeliveries",
        "Mutation.createWebhookEndpoint",
        "Mutation.updateWebhookEndpoint",
        "Mutation.setWebhookEndpointEnabled",
        "Mutation.rotateWebhookSecret",
        "Mutation.deleteWebhookEndpoint",
        "Mutation.sendTestWebhook",
    }
    assert still_signed_in.json()["data"]["me"]["email"] == "admin@acme.example"
    assert await AuditEvent.all().count() >= 1


def _problem(response: httpx2.Response) -> str | None:
    if response.status_code >= 500:
        return f"status {response.status_code}"
    if response.headers.get("content-type", "").split(";")[0] != "application/json":
        return f"not JSON: {response.headers.get('content-type')}"
    body = response.json()
    if not isinstance(body, dict) or not ({"data", "errors"} & body.keys()):
        return f"neither data nor errors: {body!r:.200}"
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        if code not in KNOWN_CODES:
            return f"error without a documented code: {error!r:.300}"
    return None


# -- bad bytes: lone surrogates and bodies not UTF-8 -----------------------------------------

#: A good request; bad_bodies corrupts it anywhere (query, operationName, variables, keys).
GOOD_REQUEST = {
    "query": "query Me { me { email } }",
    "operationName": "Me",
    "variables": {"n": 1, "list": ["x", {"key": "value"}]},
    "extensions": {"note": "x"},
}
BAD_BODY_EXAMPLES = 150


def _bad_input_problem(response: httpx2.Response) -> str | None:
    if response.status_code != 400:
        return f"status {response.status_code}: {response.text[:200]}"
    if response.headers.get("content-type", "").split(";")[0] != "application/json":
        return f"not JSON: {response.headers.get('content-type')}"
    errors = response.json().get("errors") or [{}]
    if errors[0].get("extensions", {}).get("code") != "BAD_USER_INPUT":
        return f"not BAD_USER_INPUT: {errors!r:.300}"
    return None


async def test_lone_surrogates_and_bytes_not_utf8_are_bad_user_input_signed_in_or_not(
    db: TortoiseContext,
) -> None:
    del db
    settings = cheap_settings()
    await create_user(
        settings,
        email="admin@acme.example",
        password=PASSWORD,
        organization="Acme",
        role=Role.ADMIN,
    )
    bodies = examples(bad_bodies(GOOD_REQUEST), BAD_BODY_EXAMPLES)
    transport = httpx2.ASGITransport(app=create_app(settings))
    headers = {"Content-Type": "application/json"}
    failures: list[str] = []
    async with (
        httpx2.AsyncClient(transport=transport, base_url="http://testserver") as anonymous,
        httpx2.AsyncClient(transport=transport, base_url="http://testserver") as admin,
    ):
        login = await admin.post(
            "/graphql",
            json={
                "query": LOGIN,
                "variables": {"email": "admin@acme.example", "password": PASSWORD},
            },
        )
        assert "errors" not in login.json()
        for client in (anonymous, admin):
            for body in bodies:
                response = await client.post("/graphql", content=body, headers=headers)
                problem = _bad_input_problem(response)
                if problem:
                    failures.append(f"{problem}\n{body!r:.300}")
        # The good request itself is answered: the refusals are the corruption's doing.
        good = await admin.post("/graphql", json=GOOD_REQUEST)

    assert not failures, "\n\n".join(failures[:5])
    assert good.json() == {"data": {"me": {"email": "admin@acme.example"}}}
