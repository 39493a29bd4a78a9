"""The sample Workflow Automation API, mounted under /api as ``wfa-keys serve`` does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from tortoise.context import TortoiseContext

from support.settings import cheap_settings
from wfa_auth import generate_key_id, generate_key_secret
from wfa_keys.api import create_api
from wfa_keys.crypto import hasher_for
from wfa_keys.models import ApiKey, Organization, Role, User

SETTINGS = cheap_settings(database_url="unused", token_ttl=900)


@pytest.fixture
async def http(db: TortoiseContext) -> AsyncIterator[Any]:
    api = create_api(SETTINGS)
    app = Starlette(routes=[Mount("/api", app=api)])
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
        client.api = api  # type: ignore[attr-defined]
        yield client
    await api.flush_usage()


async def make_key() -> tuple[ApiKey, str]:
    org = await Organization.create(name="Acme", has_workflow_automation=True)
    owner = await User.create(
        email="ada@acme.test", password_hash="unused", role=Role.ADMIN, organization=org
    )
    secret = generate_key_secret()
    key = await ApiKey.create(
        key_id=generate_key_id(),
        name="Nightly export",
        secret_hash=hasher_for(SETTINGS).hash(secret),
        owner=owner,
        organization=org,
    )
    return key, secret


async def test_token_exchange_and_whoami_under_api(http: Any) -> None:
    key, secret = await make_key()
    response = await http.post(
        "/api/v1/auth/api-key/token", json={"key_id": key.key_id, "key_secret": secret}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    response = await http.get(
        "/api/v1/whoami", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert response.status_code == 200
    org = await Organization.get(name="Acme")
    assert response.json() == {
        "key_id": key.key_id,
        "key_name": "Nightly export",
        "owner_email": "ada@acme.test",
        "organization": "Acme",
        "organization_id": str(org.id),
        "scopes": [],
    }
    assert secret not in response.text
    assert key.secret_hash not in response.text


async def test_whoami_accepts_basic_credentials(http: Any) -> None:
    key, secret = await make_key()
    response = await http.get("/api/v1/whoami", auth=(key.key_id, secret))
    assert response.status_code == 200
    assert response.json()["key_id"] == key.key_id


async def test_whoami_without_credentials_is_refused(http: Any) -> None:
    response = await http.get("/api/v1/whoami")
    assert response.status_code == 401
    assert response.json()["error"] == "missing_credentials"
    assert "www-authenticate" in response.headers


async def test_disabled_key_is_refused_once_key_changed_and_works_when_enabled(
    http: Any,
) -> None:
    key, secret = await make_key()
    assert (await http.get("/api/v1/whoami", auth=(key.key_id, secret))).status_code == 200
    await ApiKey.filter(key_id=key.key_id).update(enabled=False)
    await http.api.key_changed(key.key_id)
    response = await http.get("/api/v1/whoami", auth=(key.key_id, secret))
    assert (response.status_code, response.json()["error"]) == (401, "key_disabled")
    await ApiKey.filter(key_id=key.key_id).update(enabled=True)
    await http.api.key_changed(key.key_id)
    assert (await http.get("/api/v1/whoami", auth=(key.key_id, secret))).status_code == 200
