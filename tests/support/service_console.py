"""A signed-in admin of a real ``wfa-keys serve``, doing over GraphQL what the console does
(the remote verification tests, issue 19)."""

from __future__ import annotations

import base64
from typing import Any

import httpx2

EMAIL = "owner@acme.example"
PASSWORD = "a long bootstrap password"
ENV = {"WFA_BOOTSTRAP_ADMIN_EMAIL": EMAIL, "WFA_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD}
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { email } }"
CREATE = """mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) {
  keySecret apiKey { id } } }"""
ENABLE = "mutation($id: ID!, $on: Boolean!) { setApiKeyEnabled(id: $id, enabled: $on) { id } }"
REGENERATE = """mutation($id: ID!) { regenerateApiKey(id: $id, gracePeriodMinutes: 0) {
  keySecret } }"""
DELETE = "mutation($id: ID!) { deleteApiKey(id: $id) { id } }"
UPDATE = """mutation($id: ID!, $input: UpdateApiKeyInput!) {
  updateApiKey(id: $id, input: $input) { id } }"""


def basic(key_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


class Console:
    """A signed-in admin of the service, doing what the console does, over GraphQL."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx2.AsyncClient(base_url=base_url, trust_env=False, timeout=30)

    async def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data

    async def create(self, **input: Any) -> tuple[str, str]:
        created = (await self.graphql(CREATE, input={"name": "remote", **input}))["createApiKey"]
        return created["apiKey"]["id"], created["keySecret"]

    async def token(self, key_id: str, secret: str) -> str:
        response = await self.http.post(
            "/api/v1/auth/api-key/token", json={"key_id": key_id, "key_secret": secret}
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token
