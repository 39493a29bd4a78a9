"""``GET /api/openapi.json``: a valid OpenAPI 3.1 document of the key-authenticated API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.routing import Mount, Route, Router
from tortoise.context import TortoiseContext

from support.settings import cheap_settings
from wfa_keys.api import create_api

SETTINGS = cheap_settings(database_url="unused")


@pytest.fixture
async def http(db: TortoiseContext) -> AsyncIterator[httpx2.AsyncClient]:
    app = Starlette(routes=[Mount("/api", app=create_api(SETTINGS))])
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_the_document_is_public_and_valid_openapi_3_1(http: httpx2.AsyncClient) -> None:
    response = await http.get("/api/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    validate(document)  # raises on anything the 3.1 specification does not allow
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": "/api"}]


async def test_every_route_of_the_api_is_documented(http: httpx2.AsyncClient) -> None:
    document = (await http.get("/api/openapi.json")).json()
    api = create_api(SETTINGS)
    router: Router = api.app.app  # type: ignore[attr-defined]  # under ExceptionMiddleware
    routes = {
        (route.path, method.lower())
        for route in router.routes
        if isinstance(route, Route) and route.path != "/openapi.json"
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == routes | {("/v1/auth/api-key/token", "post")}


async def test_both_key_headers_are_one_security_requirement(http: httpx2.AsyncClient) -> None:
    document = (await http.get("/api/openapi.json")).json()
    assert {"keyIdHeader": [], "keySecretHeader": []} in document["security"]
    assert document["paths"]["/v1/auth/api-key/token"]["post"]["security"] == []
    verification = document["components"]["schemas"]["Verification"]
    assert verification["properties"]["code"]["enum"] == [
        "VALID",
        "INVALID_CREDENTIALS",
        "DISABLED",
        "EXPIRED",
        "IP_NOT_ALLOWED",
        "INSUFFICIENT_SCOPE",
        "THROTTLED",
    ]
