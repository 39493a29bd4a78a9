"""The key lifecycle of the service layer: revocation, announcements, the argon2 limiter.

Driven as users do: the GraphQL admin API and the key-authenticated API in one app (the
middleware's ``key_changed`` wired to the mutations, as ``wfa-keys serve`` does), and the
service layer called directly, as the console or a script would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from tortoise.context import TortoiseContext

from support.gql import PASSWORD, Api, only_error_code
from wfa_auth import Argon2Verifier
from wfa_keys import hashing, keys
from wfa_keys.api import create_api
from wfa_keys.errors import InvalidInput, NotFound
from wfa_keys.graphql import create_graphql_app
from wfa_keys.keys import Actor, KeyManager
from wfa_keys.models import AccessToken, ApiKey, AuditAction, AuditEvent, KeyChange, User
from wfa_keys.settings import Settings

SET_ENABLED = (
    "mutation S($id: ID!, $on: Boolean!) { setApiKeyEnabled(id: $id, enabled: $on) { id } }"
)
REGENERATE = "mutation R($id: ID!) { regenerateApiKey(id: $id) { keySecret } }"
DELETE = "mutation D($id: ID!) { deleteApiKey(id: $id) { id } }"
TOKEN_PATH = "/api/v1/auth/api-key/token"
EMAIL = "admin@acme.example"
UserFactory = Callable[..., Awaitable[User]]


class Deployment:
    """The admin API and the protected API of one server process, and a client of each."""

    def __init__(self, admin: Api, http: httpx2.AsyncClient) -> None:
        self.admin = admin
        self.http = http

    async def token(self, key_id: str, secret: str) -> str:
        response = await self.http.post(TOKEN_PATH, json={"key_id": key_id, "key_secret": secret})
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def whoami(self, token: str) -> int:
        response = await self.http.get(
            "/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}
        )
        return response.status_code


@pytest.fixture
async def deployment(
    db: TortoiseContext, settings: Settings, make_user: UserFactory
) -> AsyncIterator[Deployment]:
    del db
    api = create_api(settings)
    graphql = create_graphql_app(settings, on_key_changed=api.key_changed)
    app = Starlette(routes=[Route("/graphql", graphql, methods=["POST"]), Mount("/api", app=api)])
    await make_user(EMAIL)
    transport = httpx2.ASGITransport(app=app)
    async with (
        httpx2.AsyncClient(transport=transport, base_url="http://testserver") as admin_http,
        httpx2.AsyncClient(transport=transport, base_url="http://testserver") as http,
    ):
        admin = Api(admin_http)
        assert "errors" not in await admin.login(EMAIL)
        yield Deployment(admin, http)
    await api.flush_usage()


async def test_reenabling_a_key_brings_none_of_its_old_tokens_back(
    deployment: Deployment,
) -> None:
    created = await deployment.admin.create_key()
    key_id, secret = created["apiKey"]["id"], created["keySecret"]
    token = await deployment.token(key_id, secret)
    assert await deployment.whoami(token) == 200

    await deployment.admin(SET_ENABLED, id=key_id, on=False)
    assert await AccessToken.filter(key_id=key_id).count() == 0
    await deployment.admin(SET_ENABLED, id=key_id, on=True)

    assert await deployment.whoami(token) == 401
    assert await AccessToken.filter(key_id=key_id).count() == 0
    # The key itself works again, and issues new tokens.
    assert await deployment.whoami(await deployment.token(key_id, secret)) == 200


@pytest.mark.parametrize("mutation", [REGENERATE, DELETE])
async def test_regenerating_or_deleting_a_key_deletes_its_tokens(
    deployment: Deployment, mutation: str
) -> None:
    created = await deployment.admin.create_key()
    key_id = created["apiKey"]["id"]
    other = await deployment.admin.create_key("other")
    token = await deployment.token(key_id, created["keySecret"])
    other_token = await deployment.token(other["apiKey"]["id"], other["keySecret"])

    body = await deployment.admin(mutation, id=key_id)

    assert "errors" not in body, body
    assert await deployment.whoami(token) == 401
    assert await AccessToken.filter(key_id=key_id).count() == 0
    assert await deployment.whoami(other_token) == 200


async def test_every_key_change_is_published_in_its_transaction(admin: Api) -> None:
    key_id = (await admin.create_key())["apiKey"]["id"]
    await KeyChange.all().delete()

    await admin(SET_ENABLED, id=key_id, on=False)
    await admin(SET_ENABLED, id=key_id, on=False)  # no change: nothing to announce
    await admin(SET_ENABLED, id=key_id, on=True)
    await admin(REGENERATE, id=key_id)
    await admin(DELETE, id=key_id)

    changes = await KeyChange.all().order_by("id").values_list("key_id", flat=True)
    assert changes == [key_id] * 4


@pytest.mark.parametrize("mutation", [SET_ENABLED, REGENERATE, DELETE])
async def test_a_failed_key_change_publishes_nothing_and_deletes_no_token(
    admin: Api, monkeypatch: pytest.MonkeyPatch, mutation: str
) -> None:
    key_id = (await admin.create_key())["apiKey"]["id"]
    await AccessToken.create(
        token_hash="a" * 64, key_id=key_id, secret_fingerprint="f", expires_at=_later()
    )
    await KeyChange.all().delete()

    async def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit table is gone")

    monkeypatch.setattr(keys, "record_event", fail)
    body = await admin(mutation, id=key_id, on=False)

    assert only_error_code(body) == "INTERNAL_SERVER_ERROR"
    assert await KeyChange.all().count() == 0
    assert await AccessToken.filter(key_id=key_id).count() == 1
    assert (await ApiKey.get(key_id=key_id)).enabled is True


async def test_another_organizations_key_is_not_found_and_nothing_is_published(
    admin: Api, other_admin: Api
) -> None:
    key_id = (await admin.create_key())["apiKey"]["id"]
    await KeyChange.all().delete()

    for mutation in (SET_ENABLED, REGENERATE, DELETE):
        assert only_error_code(await other_admin(mutation, id=key_id, on=False)) == "NOT_FOUND"

    assert await KeyChange.all().count() == 0


def _later() -> datetime:
    return datetime.now(UTC) + timedelta(minutes=15)


async def test_the_service_layer_serves_a_caller_without_graphql(
    make_user: UserFactory,
) -> None:
    user = await make_user(EMAIL)
    await user.fetch_related("organization")
    manager = KeyManager(Argon2Verifier(time_cost=1, memory_cost_kib=8, parallelism=1))
    actor = Actor(user, client_ip="192.0.2.1")

    new = await manager.create_key(actor, name="  Nightly  ", lifetime_days=30)
    assert new.key.name == "Nightly"
    assert "***" in repr(new)
    assert new.key_secret not in repr(new)
    other = await manager.create_key(actor, name="Backup")
    assert [k.name for k in await manager.keys(actor)] == ["Backup", "Nightly"]
    assert [k.key_id for k in await manager.keys(actor, search="NIGHT")] == [new.key.key_id]
    await manager.delete_key(actor, other.key.key_id)
    disabled = await manager.set_key_enabled(actor, new.key.key_id, False)
    assert disabled.enabled is False
    assert (await manager.get_key(actor, new.key.key_id)) is not None
    assert await manager.delete_key(actor, new.key.key_id) == new.key.key_id

    with pytest.raises(NotFound):
        await manager.delete_key(actor, new.key.key_id)
    with pytest.raises(InvalidInput) as bad:
        await manager.create_key(actor, name="x" * 101)
    assert bad.value.field == "name"
    with pytest.raises(InvalidInput) as bad:
        await manager.create_key(actor, name="ok", lifetime_days=3651)
    assert bad.value.field == "lifetime_days"
    actions: list[Any] = await AuditEvent.all().order_by("id").values_list("action", flat=True)
    assert actions == [
        AuditAction.KEY_CREATED,
        AuditAction.KEY_CREATED,
        AuditAction.KEY_DELETED,
        AuditAction.KEY_DISABLED,
        AuditAction.KEY_DELETED,
    ]
    assert await AuditEvent.filter(client_ip="192.0.2.1").count() == 5


async def test_concurrent_key_creation_runs_at_most_two_argon2_hashes_at_once(
    admin: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = 0
    most = 0
    real = keys.new_key_secret  # type: ignore[attr-defined]  # patched below, as keys uses it

    def counting(hasher: Argon2Verifier) -> Any:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            # Long enough that unlimited threads would overlap.
            Argon2Verifier(time_cost=3, memory_cost_kib=8192, parallelism=1).hash(PASSWORD)
            return real(hasher)
        finally:
            running -= 1

    monkeypatch.setattr(keys, "new_key_secret", counting)

    await asyncio.gather(*(admin.create_key(f"k{n}") for n in range(8)))

    assert most <= hashing.ARGON2_CONCURRENCY
    assert await ApiKey.all().count() == 8


async def test_the_service_layer_changes_keys_and_grace_periods_without_graphql(
    make_user: UserFactory,
) -> None:
    user = await make_user(EMAIL)
    await user.fetch_related("organization")
    changed: list[str] = []

    async def on_key_changed(key_id: str) -> None:
        changed.append(key_id)

    manager = KeyManager(
        Argon2Verifier(time_cost=1, memory_cost_kib=8, parallelism=1),
        on_key_changed=on_key_changed,
    )
    actor = Actor(user, client_ip="192.0.2.1")
    new = await manager.create_key(actor, name="Nightly", scopes=["workflows:read"])
    key_id = new.key.key_id

    updated = await manager.update_key(actor, key_id, allowed_cidrs=["10.0.0.0/8"])
    regenerated = await manager.regenerate_key(actor, key_id, grace_period_minutes=30)
    assert regenerated.key.previous_secret_hash == new.key.secret_hash
    revoked = await manager.revoke_previous_secret(actor, key_id)
    organization = await manager.set_key_inactivity_days(actor, 90)

    assert (updated.scopes, updated.allowed_cidrs) == (["workflows:read"], ["10.0.0.0/8"])
    assert revoked.previous_secret_hash is None
    assert organization.key_inactivity_days == 90
    assert changed == [key_id] * 3
    with pytest.raises(InvalidInput) as bad:
        await manager.update_key(actor, key_id, scopes=["nope"])
    assert bad.value.field == "scopes"
    with pytest.raises(InvalidInput) as bad:
        await manager.regenerate_key(actor, key_id, grace_period_minutes=10081)
    assert bad.value.field == "grace_period_minutes"
    with pytest.raises(InvalidInput) as bad:
        await manager.set_key_inactivity_days(actor, 0)
    assert bad.value.field == "key_inactivity_days"
    details = await AuditEvent.all().order_by("id").values_list("action", "detail")
    assert details[1:] == [
        (AuditAction.KEY_UPDATED, {"changed": ["allowedCidrs"]}),
        (AuditAction.KEY_REGENERATED, {"gracePeriodMinutes": 30}),
        (AuditAction.PREVIOUS_SECRET_REVOKED, None),
    ]
