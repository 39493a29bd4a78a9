"""What clients and logs see of errors: codes, masking, request IDs, one log record."""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from support.gql import Api, errors_of, only_error_code
from support.settings import cheap_settings
from wfa_keys.graphql import GraphQLApp, build_schema, create_graphql_app, queries

LEAKY_TEXT = "SELECT secret_hash FROM api_key -- /srv/wfa_keys/store.py"


def graphql_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Records from the service's GraphQL logger and from Strawberry's own."""
    return [
        record
        for record in caplog.records
        if record.name.startswith(("wfa_keys.graphql", "strawberry"))
    ]


class RequestIdMiddleware:
    """Stands in for the app's request-log middleware: puts an ID in the scope state."""

    def __init__(self, app: ASGIApp, request_id: str) -> None:
        self.app = app
        self.request_id = request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {})["request_id"] = self.request_id
        await self.app(scope, receive, send)


@pytest.fixture
def broken_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``apiKeys`` fail the way a database or a bug would."""

    async def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(LEAKY_TEXT)

    monkeypatch.setattr(queries, "newest_first", explode)


@pytest.mark.usefixtures("broken_listing")
async def test_unexpected_error_is_masked_with_the_request_id_and_logged_once(
    admin: Api, gql_app: GraphQLApp, caplog: pytest.LogCaptureFixture
) -> None:
    app = RequestIdMiddleware(
        Starlette(routes=[Route("/graphql", gql_app, methods=["POST"])]), "req-42"
    )
    client = httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://testserver"
    )
    client.cookies = admin.client.cookies
    caplog.set_level(logging.DEBUG)

    async with client:
        response = await client.post("/graphql", json={"query": "{ apiKeys { totalCount } }"})

    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-42"}
    assert "SELECT" not in response.text
    assert "store.py" not in response.text
    assert "Traceback" not in response.text
    [record] = graphql_records(caplog)
    assert record.name == "wfa_keys.graphql"
    assert record.levelno == logging.ERROR
    assert "req-42" in record.getMessage()


@pytest.mark.usefixtures("broken_listing")
async def test_request_id_is_made_up_when_no_middleware_gave_one(
    admin: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    body = await admin("{ apiKeys { totalCount } }")

    request_id = body["errors"][0]["extensions"]["requestId"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    [record] = graphql_records(caplog)
    assert request_id in record.getMessage()


def test_schema_execute_without_a_request_masks_and_logs_with_one_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    schema = build_schema(cheap_settings())

    # No context at all: the resolver fails on it, unexpectedly.
    result = schema.execute_sync("{ me { id } }", context_value=None)

    assert result.errors is not None
    [error] = result.errors
    assert error.message == "Internal server error"
    assert error.extensions is not None
    request_id = error.extensions["requestId"]
    [record] = graphql_records(caplog)
    assert request_id in record.getMessage()


async def test_expected_errors_are_not_logged(
    admin: Api, anonymous: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    answers = [
        await anonymous("{ apiKeys { totalCount } }"),
        await admin('mutation { deleteApiKey(id: "wfak_00000000000000000000") { id } }'),
        await admin('{ apiKey(id: "nope") { id } }'),
        await admin("{ apiKeys(first: 0) { totalCount } }"),
        await admin("{ nope }"),
        await admin("{ me { "),
    ]

    assert [only_error_code(body) for body in answers] == [
        "UNAUTHENTICATED",
        "NOT_FOUND",
        "BAD_USER_INPUT",
        "BAD_USER_INPUT",
        "GRAPHQL_VALIDATION_FAILED",
        "GRAPHQL_PARSE_FAILED",
    ]
    assert graphql_records(caplog) == []


async def test_validation_errors_carry_a_code(admin: Api) -> None:
    body = await admin("query($n: Int!) { apiKeys(first: $n) { totalCount } }", n="ten")
    assert errors_of(body) == [("GRAPHQL_VALIDATION_FAILED", None)]


async def test_every_graphql_response_is_not_cached(anonymous: Api) -> None:
    response = await anonymous.post("{ me { id } }")
    assert response.headers["cache-control"] == "no-store"


async def test_queries_over_get_are_refused(anonymous: Api) -> None:
    response = await anonymous.client.get("/graphql", params={"query": "{ me { id } }"})
    assert response.status_code == 400


async def test_mutations_over_get_are_refused(anonymous: Api) -> None:
    response = await anonymous.client.get("/graphql", params={"query": "mutation { logout }"})
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", '{"query": "mutation { logout }"}'),
        ("application/x-www-form-urlencoded", "query=mutation%20%7B%20logout%20%7D"),
    ],
)
async def test_non_json_bodies_are_refused(anonymous: Api, content_type: str, body: str) -> None:
    response = await anonymous.client.post(
        "/graphql", content=body, headers={"content-type": content_type}
    )
    assert response.status_code == 400


async def test_graphiql_is_not_served_in_production(anonymous: Api) -> None:
    response = await anonymous.client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 404


async def test_graphiql_is_served_when_enabled(make_client: Any) -> None:
    del make_client  # the database is open
    app = create_graphql_app(cheap_settings(dev=True))
    transport = httpx2.ASGITransport(
        app=Starlette(routes=[Route("/graphql", app, methods=["GET", "POST"])])
    )
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


@pytest.mark.parametrize("body", ['"{ me { id } }"', "42", "null", "true"])
async def test_a_json_body_that_is_not_an_object_is_a_bad_request(
    anonymous: Api, body: str
) -> None:
    response = await anonymous.client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert "must be a JSON object" in response.text
