"""wfa_auth.client.WfaKeyAuth against the sample API of ``wfa-keys serve`` (mounted under /api)."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from support.counting import Counted
from support.gql import Api
from wfa_auth.client import WfaKeyAuth
from wfa_keys.api import create_api
from wfa_keys.settings import Settings


async def test_a_key_created_by_an_admin_calls_the_sample_api_with_one_token_exchange(
    admin: Api, settings: Settings
) -> None:
    created = await admin.create_key()
    key_id, secret = created["apiKey"]["id"], created["keySecret"]
    api = create_api(settings)
    counted = Counted(api)
    app = Starlette(routes=[Mount("/api", app=counted)])
    auth = WfaKeyAuth(key_id, secret, token_url="/api/v1/auth/api-key/token")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", auth=auth) as client:
        responses = [await client.get("/api/v1/whoami") for _ in range(3)]
    await api.flush_usage()
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert {r.json()["key_id"] for r in responses} == {key_id}
    assert counted.count("/api/v1/auth/api-key/token") == 1
    assert counted.count("/api/v1/whoami") == 3
