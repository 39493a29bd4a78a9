"""Grace periods, allow-lists and the last-used address through real ``wfa-keys serve`` processes.

The key rows are written directly in the database, as a regeneration with a grace period
leaves them; the servers see them as any change made elsewhere.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
import pytest
from tortoise.context import TortoiseContext

from support.serving import Server, start_server
from wfa_auth import generate_key_id, generate_key_secret, secret_fingerprint, token_digest
from wfa_keys.crypto import hasher_for
from wfa_keys.db import database
from wfa_keys.models import AccessToken, ApiKey, Organization, Role, User
from wfa_keys.settings import Settings

pytestmark = pytest.mark.e2e

#: Long enough for the checks made before the end on a busy machine; the test says if not.
GRACE_SECONDS = 8
#: How long after the end of the grace period a refusal may take to show (bounded poll).
POLL_LIMIT_SECONDS = 30


async def status(client: httpx2.AsyncClient, **kwargs: object) -> tuple[int, str | None]:
    response = await client.get("/api/v1/whoami", **kwargs)  # type: ignore[arg-type]
    return response.status_code, response.json().get("error")


async def test_the_old_secret_and_its_tokens_work_on_every_server_until_the_grace_period_ends(
    db: TortoiseContext, tmp_path: Path, e2e_database_url: str, servers: list[Server]
) -> None:
    for _ in range(2):
        servers.append(start_server(tmp_path, e2e_database_url))
    # The servers' own hasher: no rehash on first use, which would change the hashes.
    hasher = hasher_for(Settings(database_url="unused"))
    old, new = generate_key_secret(), generate_key_secret()
    old_hash = hasher.hash(old)
    old_token = "issued-before-the-regeneration-" + generate_key_secret()
    key_id = generate_key_id()
    async with database(e2e_database_url, migrate=False):
        org = await Organization.create(name="Acme", has_workflow_automation=True)
        owner = await User.create(
            email="ada@acme.test", password_hash="unused", role=Role.ADMIN, organization=org
        )
        ends = datetime.now(UTC) + timedelta(seconds=GRACE_SECONDS)
        await ApiKey.create(
            key_id=key_id,
            name="Rolled over",
            secret_hash=hasher.hash(new),
            previous_secret_hash=old_hash,
            previous_secret_expires_at=ends,
            scopes=["workflows:read"],
            allowed_cidrs=["127.0.0.0/8"],
            owner=owner,
            organization=org,
        )
        await AccessToken.create(
            token_hash=token_digest(old_token),
            key_id=key_id,
            secret_fingerprint=secret_fingerprint(old_hash),
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
    clients = [
        httpx2.AsyncClient(base_url=server.base_url, trust_env=False, timeout=30)
        for server in servers
    ]
    try:
        first = clients[0]
        # During the grace period, on both servers: the old secret, the old token, and a
        # token obtained with the old secret from one server, used on the other.
        exchanged = await first.post(
            "/api/v1/auth/api-key/token", json={"key_id": key_id, "key_secret": old}
        )
        assert exchanged.status_code == 200
        during = exchanged.json()["access_token"]
        for client in clients:
            assert await status(client, auth=(key_id, old)) == (200, None)
            assert await status(client, auth=(key_id, new)) == (200, None)
            for token in (old_token, during):
                headers = {"Authorization": f"Bearer {token}"}
                assert await status(client, headers=headers) == (200, None)
        if datetime.now(UTC) >= ends:
            pytest.fail(f"the checks took longer than the {GRACE_SECONDS} s grace period")
        # Then, without any notification, each server refuses them from the end on.
        deadline = time.monotonic() + GRACE_SECONDS + POLL_LIMIT_SECONDS
        for client in clients:
            while (answer := await status(client, auth=(key_id, old))) == (200, None):
                assert time.monotonic() < deadline, "the old secret outlived its grace period"
                await asyncio.sleep(0.2)
            refused_at = datetime.now(UTC)
            assert answer == (401, "invalid_credentials")
            assert refused_at >= ends
            for token in (old_token, during):
                headers = {"Authorization": f"Bearer {token}"}
                assert await status(client, headers=headers) == (401, "invalid_token")
            assert await status(client, auth=(key_id, new)) == (200, None)
            workflows = await client.get("/api/v1/workflows", auth=(key_id, new))
            assert workflows.status_code == 200
            refused = await client.post(
                "/api/v1/workflows", auth=(key_id, new), json={"name": "Nope"}
            )
            assert (refused.status_code, refused.json()["scope"]) == (403, "workflows:write")
    finally:
        for client in clients:
            await client.aclose()
    for server in servers:
        server.stop()
    async with database(e2e_database_url, migrate=False):
        key = await ApiKey.get(key_id=key_id)
        tokens_left = await AccessToken.filter(key_id=key_id).count()
    # The servers wrote the last use, with the address it came from.
    assert key.last_used_at is not None
    assert key.last_used_ip == "127.0.0.1"
    # The tokens of the old secret were deleted when refused.
    assert tokens_left == 0
