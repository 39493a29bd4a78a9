"""Fixtures for the service: organizations, users and signed-in GraphQL clients.

``gql_app`` is the GraphQL app mounted alone in a tiny Starlette app (the full app is
``wfa_keys.app``); ``anonymous`` is a client without a session; ``admin``, ``member``,
``other_admin`` (another organization) and ``unsubscribed_admin`` (an organization without
Workflow Automation) are clients signed in through the ``login`` mutation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from tortoise.context import TortoiseContext

from support.gql import (
    ORGANIZATION,
    OTHER_ORGANIZATION,
    PASSWORD,
    UNSUBSCRIBED_ORGANIZATION,
    Api,
    KeyChanges,
)
from support.settings import cheap_settings
from wfa_keys import keys
from wfa_keys.graphql import GraphQLApp, create_graphql_app
from wfa_keys.models import Role, User
from wfa_keys.settings import Settings
from wfa_keys.users import create_user, set_subscription


@pytest.fixture
def settings() -> Settings:
    """Production-mode settings with OWASP's minimum argon2 cost."""
    return cheap_settings(database_url="unused-by-these-tests")


@pytest.fixture
def key_changes() -> KeyChanges:
    """The ``on_key_changed`` callback of ``gql_app``."""
    return KeyChanges()


@pytest.fixture
def gql_app(settings: Settings, key_changes: KeyChanges) -> GraphQLApp:
    """The GraphQL app under test."""
    return create_graphql_app(settings, on_key_changed=key_changes)


MakeClient = Callable[..., Api]


@pytest.fixture
async def make_client(db: TortoiseContext, gql_app: GraphQLApp) -> AsyncIterator[MakeClient]:
    """A factory of clients of ``gql_app``, each with its own cookie jar, closed at the end."""
    del db  # requested so that the database is open before any client talks
    app = Starlette(routes=[Route("/graphql", gql_app, methods=["GET", "POST"])])
    clients: list[httpx2.AsyncClient] = []

    def make(*, client_ip: str = "127.0.0.1", base_url: str = "http://testserver") -> Api:
        transport = httpx2.ASGITransport(app=app, client=(client_ip, 50000))
        client = httpx2.AsyncClient(transport=transport, base_url=base_url)
        clients.append(client)
        return Api(client)

    yield make
    for client in clients:
        await client.aclose()


UserFactory = Callable[..., Awaitable[User]]


@pytest.fixture
def make_user(db: TortoiseContext, settings: Settings) -> UserFactory:
    """Create a user (and its organization, subscribed, when new)."""
    del db

    async def make(
        email: str, *, organization: str = ORGANIZATION, role: Role = Role.ADMIN
    ) -> User:
        return await create_user(
            settings, email=email, password=PASSWORD, organization=organization, role=role
        )

    return make


@pytest.fixture
def anonymous(make_client: MakeClient) -> Api:
    """A client that has not signed in."""
    return make_client()


async def _signed_in(make_client: MakeClient, make_user: UserFactory, email: str, **kw: Any) -> Api:
    await make_user(email, **kw)
    api = make_client()
    body = await api.login(email)
    assert "errors" not in body, body
    return api


@pytest.fixture
async def admin(make_client: MakeClient, make_user: UserFactory) -> Api:
    """A client signed in as ``admin@acme.example``, an admin of Acme (subscribed)."""
    return await _signed_in(make_client, make_user, "admin@acme.example")


@pytest.fixture
async def member(make_client: MakeClient, make_user: UserFactory) -> Api:
    """A client signed in as ``member@acme.example``, a member (not admin) of Acme."""
    return await _signed_in(make_client, make_user, "member@acme.example", role=Role.MEMBER)


@pytest.fixture
async def other_admin(make_client: MakeClient, make_user: UserFactory) -> Api:
    """A client signed in as an admin of Globex, another subscribed organization."""
    return await _signed_in(
        make_client, make_user, "admin@globex.example", organization=OTHER_ORGANIZATION
    )


@pytest.fixture
async def unsubscribed_admin(make_client: MakeClient, make_user: UserFactory) -> Api:
    """A client signed in as an admin of Initech, which has no Workflow Automation."""
    await make_user("admin@initech.example", organization=UNSUBSCRIBED_ORGANIZATION)
    await set_subscription(UNSUBSCRIBED_ORGANIZATION, workflow_automation=False)
    api = make_client()
    body = await api.login("admin@initech.example")
    assert "errors" not in body, body
    return api


@pytest.fixture
def break_audit(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it to make audit writes fail inside the mutation's transaction, after the change."""

    async def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit table is gone")

    def breaks() -> None:
        monkeypatch.setattr(keys, "record_event", fail)

    return breaks
