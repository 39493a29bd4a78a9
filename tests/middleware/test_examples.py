"""The runnable examples protect their routes; the FastAPI one keeps /docs public."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from support.keys import client_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("name", "path"), [("starlette_app", "/whoami"), ("bare_asgi", "/")])
async def test_example_answers_its_key_and_refuses_anonymous_calls(name: str, path: str) -> None:
    example = load(name)
    async with client_for(example.app) as client:
        anonymous = await client.get(path)
        response = await client.get(path, auth=(example.demo_key.key_id, example.demo_secret))
    assert anonymous.status_code == 401
    assert response.status_code == 200
    assert response.json()["key_id"] == example.demo_key.key_id


async def test_fastapi_example_protects_its_routes_and_keeps_docs_public() -> None:
    example = load("fastapi_app")
    key_id, secret = example.demo_key.key_id, example.demo_secret
    async with client_for(example.app) as client:
        docs = await client.get("/docs")
        schema = await client.get("/openapi.json")
        health = await client.get("/healthz")
        anonymous = await client.get("/whoami")
        with_basic = await client.get("/whoami", auth=(key_id, secret))
        exchange = await client.post(
            "/v1/auth/api-key/token", json={"key_id": key_id, "key_secret": secret}
        )
        token = exchange.json()["access_token"]
        with_token = await client.get("/members", headers={"Authorization": f"Bearer {token}"})
    assert docs.status_code == 200
    assert sorted(schema.json()["components"]["securitySchemes"]) == [
        "WfaKeyBasic",
        "WfaKeyBearer",
        "WfaKeyId",
        "WfaKeySecret",
    ]
    assert health.json() == {"status": "ok"}
    assert anonymous.status_code == 401
    assert with_basic.json() == {"key_id": key_id, "owner": "admin@example.com"}
    assert with_token.json() == {"organization": "Example"}
