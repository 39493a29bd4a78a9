"""Helpers for driving the GraphQL API in tests: a client, queries, error extraction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx2
from tortoise.backends.base.client import TransactionalDBClient
from tortoise.connection import get_connection

PASSWORD = "correct horse battery staple"
ORGANIZATION = "Acme"
OTHER_ORGANIZATION = "Globex"
UNSUBSCRIBED_ORGANIZATION = "Initech"

LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) { id email role organization { name } }
}
"""

CREATE_KEY = """
mutation Create($name: String!, $days: Int) {
  createApiKey(input: {name: $name, lifetimeDays: $days}) {
    keySecret
    apiKey { id name enabled status createdAt expiresAt lastUsedAt secretRegeneratedAt
             owner { email } }
  }
}
"""


class Api:
    """A GraphQL client over ``httpx2``; keeps the session cookie like a browser."""

    def __init__(self, client: httpx2.AsyncClient) -> None:
        self.client = client

    async def post(self, query: str, **variables: Any) -> httpx2.Response:
        """POST one operation and return the HTTP response."""
        return await self.client.post("/graphql", json={"query": query, "variables": variables})

    async def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        """POST one operation and return the JSON body (the status must be 200)."""
        response = await self.post(query, **variables)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def connection(self, query: str, field: str, **variables: Any) -> dict[str, Any]:
        """Run a query of one connection field; return that connection (no error allowed)."""
        body = await self(query, **variables)
        assert "errors" not in body, body
        connection: dict[str, Any] = body["data"][field]
        return connection

    async def login(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        """Sign in through the ``login`` mutation."""
        return await self(LOGIN, email=email, password=password)

    async def create_key(self, name: str = "CI deploy", days: int | None = None) -> dict[str, Any]:
        """Create a key; return ``createApiKey`` (fails the test on any error)."""
        body = await self(CREATE_KEY, name=name, days=days)
        assert "errors" not in body, body
        created: dict[str, Any] = body["data"]["createApiKey"]
        return created


def errors_of(body: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(code, field) of every error in a response body."""
    return [
        (error["extensions"]["code"], error["extensions"].get("field"))
        for error in body.get("errors", [])
    ]


def only_error_code(body: dict[str, Any]) -> str:
    """The code of the one error in ``body``."""
    assert len(body.get("errors", [])) == 1, body
    code: str = body["errors"][0]["extensions"]["code"]
    return code


@dataclass
class KeyChanges:
    """Records every ``on_key_changed`` call and whether a transaction was still open."""

    key_ids: list[str] = field(default_factory=list)
    inside_transaction: list[bool] = field(default_factory=list)

    async def __call__(self, key_id: str) -> None:
        self.key_ids.append(key_id)
        connection = get_connection("default")
        self.inside_transaction.append(isinstance(connection, TransactionalDBClient))
