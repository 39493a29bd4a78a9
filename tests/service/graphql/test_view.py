"""Requests refused before any GraphQL runs: JSON in GraphQL's error shape, with headers."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
import strawberry
from tortoise.context import TortoiseContext

from support.gql import Api
from wfa_keys.app import create_app
from wfa_keys.graphql import Schema, create_graphql_app
from wfa_keys.graphql.view import refusal
from wfa_keys.models import ApiKey
from wfa_keys.settings import Settings


def get_query(c: httpx2.AsyncClient) -> Any:
    return c.get("/graphql", params={"query": "{ __typename }"})


def batch(c: httpx2.AsyncClient) -> Any:
    return c.post("/graphql", json=[{"query": "{ __typename }"}, {"query": "{ __typename }"}])


def form_body(c: httpx2.AsyncClient) -> Any:
    return c.post("/graphql", content=b"query={__typename}", headers={"Content-Type": "text/plain"})


def deeply_nested(c: httpx2.AsyncClient) -> Any:
    body = b'{"query": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    return c.post("/graphql", content=body, headers={"Content-Type": "application/json"})


def put(c: httpx2.AsyncClient) -> Any:
    return c.put("/graphql", json={"query": "{ __typename }"})


@pytest.mark.parametrize(
    ("send", "status"),
    [(get_query, 400), (batch, 400), (form_body, 400), (deeply_nested, 400), (put, 405)],
    ids=["get-query", "batch", "other-content-type", "deeply-nested-json", "put"],
)
async def test_refusals_are_graphql_errors_with_the_request_id_and_headers(
    db: TortoiseContext, send: Any, status: int
) -> None:
    app = create_app(Settings(database_url="unused", max_body_bytes=1024 * 1024))
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://t"
    ) as c:
        response = await send(c)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    [error] = body["errors"]
    assert error["message"]
    assert error["extensions"]["code"] in {"BAD_REQUEST", "NOT_FOUND", "METHOD_NOT_ALLOWED"}
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    assert response.headers["cache-control"] == "no-store"
    assert "x-content-type-options" in response.headers
    assert "Traceback" not in response.text


def test_a_refusal_quoting_a_lone_surrogate_is_still_json() -> None:
    # Strawberry's refusals quote the request ("Unknown operation named ..."): whatever they
    # quote, the answer renders (a lone surrogate made it a plain-text 500 once).
    response = refusal(400, "Unknown operation named 'Q\ud800'.", "0123456789abcdef")

    error = json.loads(bytes(response.body))["errors"][0]
    assert error["message"] == "Unknown operation named 'Q\\ud800'."
    assert error["extensions"] == {"code": "BAD_REQUEST", "requestId": "0123456789abcdef"}


# -- The bytes of an answer ---------------------------------------------------------------


def strawberrys_bytes(content: bytes) -> bytes:
    """What Strawberry's own encoder (``json.dumps``, compact) writes for this answer."""
    return json.dumps(json.loads(content), separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "name",
    [
        "CI deploy",
        "café ☕",  # beyond ASCII: escaped by the json module
        "delete\x7fme",  # DEL: escaped by the json module, not by orjson
        "tab\tnew\nline\x01\x1f",
        'quote " and back\\slash / slash',
        "emoji 😀 outside the BMP",
    ],
)
async def test_answers_have_the_bytes_strawberrys_json_encoder_writes(
    admin: Api, name: str
) -> None:
    key_id = (await admin.create_key())["apiKey"]["id"]
    await ApiKey.filter(key_id=key_id).update(name=name)

    listed = await admin.post("{ apiKeys { nodes { id name owner { email } } } }")
    refused = await admin.post('{ apiKeys(after: "bad") { nodes { name } } }')

    assert listed.json()["data"]["apiKeys"]["nodes"][0]["name"] == name
    assert listed.content == strawberrys_bytes(listed.content)
    assert refused.json()["errors"]
    assert refused.content == strawberrys_bytes(refused.content)


@strawberry.type
class Measured:
    ratio: float


@strawberry.type
class FloatQuery:
    @strawberry.field
    def measured(self) -> Measured:
        return Measured(ratio=2.5e-07)  # orjson writes 2.5e-7, the json module 2.5e-07


def test_only_a_schema_without_floats_is_written_by_orjson(settings: Settings) -> None:
    app = create_graphql_app(settings)
    assert isinstance(app.schema, Schema)
    assert app.schema.data_without_floats
    answer = {"data": {"me": {"email": "a@b.example"}}}
    encoded = app.encode_json(answer)
    assert isinstance(encoded, bytes)  # orjson's (the json module's would be text)
    assert encoded == json.dumps(answer, separators=(",", ":")).encode()
    assert isinstance(app.encode_json({"data": {"me": {"email": "é@b.example"}}}), str)

    app.schema = Schema(query=FloatQuery)
    assert not app.schema.data_without_floats
    result = app.schema.execute_sync("{ measured { ratio } }")
    assert app.encode_json({"data": result.data}) == '{"data":{"measured":{"ratio":2.5e-07}}}'
