"""The Tortoise key and token stores, alone and behind the middleware."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tortoise.context import TortoiseContext
from tortoise.transactions import in_transaction

from support.collector import young_survivors
from support.statements import sent_statements
from wfa_auth import (
    ApiKeyAuthMiddleware,
    Argon2Verifier,
    Caching,
    KeyRecord,
    Throttling,
    TokenRecord,
    Usage,
    generate_key_id,
    generate_key_secret,
)
from wfa_keys.db import tortoise_config
from wfa_keys.limits import MAX_TOKENS_PER_KEY
from wfa_keys.models import AccessToken, ApiKey, KeyNetwork, Organization, Role, User
from wfa_keys.store import TortoiseKeyStore, TortoiseTokenStore

VERIFIER = Argon2Verifier(time_cost=1, memory_cost_kib=8, parallelism=1)


async def make_key(
    *, organization: str = "Acme", email: str = "ada@acme.test", role: Role = Role.ADMIN
) -> tuple[ApiKey, str]:
    org, _ = await Organization.get_or_create(
        name=organization, defaults={"has_workflow_automation": True}
    )
    owner = await User.get_or_none(email=email)
    if owner is None:
        owner = await User.create(email=email, password_hash="unused", role=role, organization=org)
    secret = generate_key_secret()
    key = await ApiKey.create(
        key_id=generate_key_id(),
        name="CI",
        secret_hash=VERIFIER.hash(secret),
        owner=owner,
        organization=org,
    )
    return key, secret


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.user.display_name})


def protected(**options: Any) -> ApiKeyAuthMiddleware:
    app = Starlette(routes=[Route("/whoami", whoami)])
    options.setdefault("caching", Caching(record_ttl=3600))
    return ApiKeyAuthMiddleware(
        app,
        store=TortoiseKeyStore(),
        token_store=TortoiseTokenStore(),
        verifier=VERIFIER,
        **options,
    )


@pytest.fixture
async def client(db: TortoiseContext) -> AsyncIterator[tuple[ApiKeyAuthMiddleware, Any]]:
    app = protected()
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield app, http
    await app.flush_usage()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def token_for(http: Any, key_id: str, secret: str) -> str:
    response = await http.post(
        "/v1/auth/api-key/token", json={"key_id": key_id, "key_secret": secret}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


# -- the stores alone ------------------------------------------------------------------------


async def test_key_record_carries_the_owner_and_organization(db: TortoiseContext) -> None:
    key, _ = await make_key()
    record = await TortoiseKeyStore().get_key(key.key_id)
    assert record is not None
    assert (record.key_id, record.name, record.secret_hash) == (key.key_id, "CI", key.secret_hash)
    assert record.enabled
    assert record.expires_at is None
    assert record.owner_email == "ada@acme.test"
    assert record.owner_is_active_admin
    assert record.organization_name == "Acme"
    assert record.organization_subscribed
    assert key.secret_hash not in repr(record)


async def test_unknown_and_deleted_keys_are_not_found(db: TortoiseContext) -> None:
    key, _ = await make_key()
    await key.delete()
    store = TortoiseKeyStore()
    assert await store.get_key(key.key_id) is None
    assert await store.get_key(generate_key_id()) is None


@pytest.mark.parametrize("change", [{"is_active": False}, {"role": Role.MEMBER}])
async def test_deactivated_or_demoted_owner_is_no_active_admin(
    db: TortoiseContext, change: dict[str, Any]
) -> None:
    key, _ = await make_key()
    await User.filter(email="ada@acme.test").update(**change)
    record = await TortoiseKeyStore().get_key(key.key_id)
    assert record is not None
    assert not record.owner_is_active_admin


async def test_record_usage_only_moves_last_used_forward_with_its_address(
    db: TortoiseContext,
) -> None:
    key, _ = await make_key()
    other, _ = await make_key()
    later = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    store = TortoiseKeyStore()
    await store.record_usage(
        {key.key_id: Usage(later, "10.0.0.7"), other.key_id: Usage(later, "2001:db8::1")}
    )
    # A late write of an older use changes neither the time nor the address.
    await store.record_usage({key.key_id: Usage(later - timedelta(minutes=5), "10.9.9.9")})
    await key.refresh_from_db()
    await other.refresh_from_db()
    assert (key.last_used_at, key.last_used_ip) == (later, "10.0.0.7")
    assert (other.last_used_at, other.last_used_ip) == (later, "2001:db8::1")
    await store.record_usage({key.key_id: Usage(later + timedelta(minutes=1), None)})
    await key.refresh_from_db()
    assert (key.last_used_at, key.last_used_ip) == (later + timedelta(minutes=1), None)


async def test_record_usage_writes_no_address_longer_than_the_column(db: TortoiseContext) -> None:
    key, _ = await make_key()
    when = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    await TortoiseKeyStore().record_usage({key.key_id: Usage(when, "fe80::1%" + "x" * 60)})
    await key.refresh_from_db()
    assert (key.last_used_at, key.last_used_ip) == (when, None)


async def test_a_key_record_carries_scopes_allow_list_and_previous_secret(
    db: TortoiseContext,
) -> None:
    key, _ = await make_key()
    ends = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    await ApiKey.filter(key_id=key.key_id).update(
        scopes=["workflows:read"],
        allowed_cidrs=["10.0.0.0/8"],
        previous_secret_hash="old-hash",
        previous_secret_expires_at=ends,
    )
    record = await TortoiseKeyStore().get_key(key.key_id)
    assert isinstance(record, KeyRecord)
    assert record.scopes == ("workflows:read",)
    assert record.allowed_cidrs == ("10.0.0.0/8",)
    assert (record.previous_secret_hash, record.previous_secret_expires_at) == ("old-hash", ends)


async def test_replace_secret_hash_loses_to_a_regenerate(db: TortoiseContext) -> None:
    key, _ = await make_key()
    store = TortoiseKeyStore()
    await store.replace_secret_hash(key.key_id, "not-the-current-hash", "rehashed")
    await key.refresh_from_db()
    assert key.secret_hash != "rehashed"
    await store.replace_secret_hash(key.key_id, key.secret_hash, "rehashed")
    await key.refresh_from_db()
    assert key.secret_hash == "rehashed"


async def test_token_store_keeps_digests_and_drops_expired_tokens(db: TortoiseContext) -> None:
    tokens = TortoiseTokenStore()
    now = datetime.now(UTC)
    old = TokenRecord("wfak_a", "f" * 64, now - timedelta(seconds=1))
    new = TokenRecord("wfak_a", "f" * 64, now + timedelta(hours=1))
    await tokens.save_token("1" * 64, old, max_per_key=100)
    await tokens.save_token("2" * 64, new, max_per_key=100)
    assert await tokens.get_token("1" * 64) is None  # purged when the second was saved
    assert await tokens.get_token("2" * 64) == new
    await tokens.delete_token("2" * 64)
    assert await AccessToken.all().count() == 0


async def test_token_store_keeps_a_keys_newest_tokens_and_deletes_all_of_a_key(
    db: TortoiseContext,
) -> None:
    tokens = TortoiseTokenStore()
    now = datetime.now(UTC)
    for i in range(4):
        record = TokenRecord("wfak_a", "f" * 64, now + timedelta(minutes=10 + i))
        await tokens.save_token(str(i) * 64, record, max_per_key=3)
    other = TokenRecord("wfak_b", "f" * 64, now + timedelta(minutes=1))
    await tokens.save_token("b" * 64, other, max_per_key=3)
    assert await tokens.get_token("0" * 64) is None  # the oldest of wfak_a went
    kept: list[Any] = await AccessToken.filter(key_id="wfak_a").values_list("token_hash", flat=True)
    assert sorted(kept) == [str(i) * 64 for i in (1, 2, 3)]
    await tokens.delete_tokens_for_key("wfak_a")
    left: list[Any] = await AccessToken.all().values_list("key_id", flat=True)
    assert left == ["wfak_b"]


# -- the middleware over the database --------------------------------------------------------


async def test_basic_and_bearer_work_and_last_use_is_recorded(client: Any) -> None:
    app, http = client
    key, secret = await make_key()
    token = await token_for(http, key.key_id, secret)
    assert await AccessToken.filter(key_id=key.key_id).count() == 1
    assert not await AccessToken.filter(token_hash=token).exists()
    for headers in ({"X-API-Key-ID": key.key_id, "X-API-Key-Secret": secret}, bearer(token)):
        response = await http.get("/whoami", headers=headers)
        assert response.json() == {"user": "ada@acme.test"}
    await app.flush_usage()
    await key.refresh_from_db()
    assert key.last_used_at is not None


async def test_disable_delete_and_owner_deactivation_revoke_keys_and_tokens(client: Any) -> None:
    app, http = client
    disabled, disabled_secret = await make_key()
    deleted, deleted_secret = await make_key()
    orphan, orphan_secret = await make_key(email="bob@acme.test")
    tokens = {
        k.key_id: await token_for(http, k.key_id, s)
        for k, s in (
            (disabled, disabled_secret),
            (deleted, deleted_secret),
            (orphan, orphan_secret),
        )
    }
    async with in_transaction():
        await ApiKey.filter(key_id=disabled.key_id).update(enabled=False)
        await ApiKey.filter(key_id=deleted.key_id).delete()
        await User.filter(email="bob@acme.test").update(is_active=False)
    for key in (disabled, deleted, orphan):
        await app.key_changed(key.key_id)
    expected = {
        disabled.key_id: "key_disabled",
        deleted.key_id: "invalid_token",
        orphan.key_id: "key_owner_inactive",
    }
    for key_id, error in expected.items():
        response = await http.get("/whoami", headers=bearer(tokens[key_id]))
        assert (response.status_code, response.json()["error"]) == (401, error)
    response = await http.get(
        "/whoami", headers={"X-API-Key-ID": deleted.key_id, "X-API-Key-Secret": deleted_secret}
    )
    assert response.json()["error"] == "invalid_credentials"
    # The token of the deleted key was dropped when it was refused.
    assert not await AccessToken.filter(key_id=deleted.key_id).exists()


async def test_regenerate_race_old_secret_never_passes_once_regenerate_returned(
    db: TortoiseContext,
) -> None:
    # Throttling would turn refusals into 429s; here only the race is under test.
    app = protected(
        throttling=Throttling(max_failures_per_key_and_ip=100_000, max_failing_keys_per_ip=100_000)
    )
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await regenerate_race(app, http)
        await app.flush_usage()


async def regenerate_race(app: ApiKeyAuthMiddleware, http: Any) -> None:
    key, old_secret = await make_key()
    old_token = await token_for(http, key.key_id, old_secret)
    old_headers = [
        {"X-API-Key-ID": key.key_id, "X-API-Key-Secret": old_secret},
        bearer(old_token),
    ]
    returned = False
    enough = asyncio.Event()
    results: list[tuple[bool, int]] = []

    async def caller(n: int) -> None:
        calls_after = 0
        # Bounded: each caller stops after 5 calls started once the regenerate returned.
        for i in range(2000):
            started_after = returned
            response = await http.get("/whoami", headers=old_headers[(n + i) % 2])
            results.append((started_after, response.status_code))
            if len(results) >= 20:
                enough.set()
            calls_after += started_after
            if calls_after >= 5:
                return
            # A warm call through the in-memory transport never suspends; a real socket does.
            await asyncio.sleep(0)

    async def regenerate() -> str:
        nonlocal returned
        await enough.wait()
        new_secret = generate_key_secret()
        new_hash = VERIFIER.hash(new_secret)
        async with in_transaction():
            await ApiKey.filter(key_id=key.key_id).update(
                secret_hash=new_hash, secret_regenerated_at=datetime.now(UTC)
            )
        await app.key_changed(key.key_id)
        returned = True
        return new_secret

    *_, new_secret = await asyncio.gather(*(caller(n) for n in range(6)), regenerate())
    before = [status for after, status in results if not after]
    after = [status for after, status in results if after]
    assert 200 in before
    assert len(after) == 6 * 5
    assert set(after) == {401}
    response = await http.get(
        "/whoami", headers={"X-API-Key-ID": key.key_id, "X-API-Key-Secret": new_secret}
    )
    assert response.status_code == 200
    assert (await http.get("/whoami", headers=bearer(old_token))).status_code == 401


def unreachable_database_url(database_url: str) -> str:
    """The same kind of database as the suite's, somewhere nothing answers."""
    if database_url.startswith("sqlite"):
        return "sqlite:///nonexistent-directory/wfa-keys.sqlite3"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens
    return f"postgres://postgres@127.0.0.1:{port}/wfa_down"


async def settle_sqlite_workers() -> None:
    """Let aiosqlite's worker threads finish while the loop is open.

    After a failed connect aiosqlite queues its own stop and does not wait for it; the thread
    then reports to the event loop, which must still be running (bounded wait per thread).
    """
    for thread in threading.enumerate():
        if "_connection_worker_thread" in thread.name:
            await asyncio.to_thread(thread.join, 5)


@pytest.mark.parametrize("mode", ["key", "bearer", "token"])
async def test_database_down_answers_503_never_401_or_500(database_url: str, mode: str) -> None:
    # Straight through Tortoise: wfa_keys.db.database() refuses a SQLite file it cannot open.
    async with TortoiseContext() as ctx:
        await ctx.init(config=tortoise_config(unreachable_database_url(database_url)))
        app = protected()
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://t") as http:
            key_id, secret = generate_key_id(), generate_key_secret()
            if mode == "key":
                response = await http.get(
                    "/whoami", headers={"X-API-Key-ID": key_id, "X-API-Key-Secret": secret}
                )
            elif mode == "bearer":
                response = await http.get("/whoami", headers=bearer("some-token"))
            else:
                response = await http.post(
                    "/v1/auth/api-key/token", json={"key_id": key_id, "key_secret": secret}
                )
        await settle_sqlite_workers()
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert response.json()["error"] == "service_unavailable"


def test_postgresql_runs_are_really_on_postgresql(database_url: str) -> None:
    if os.environ.get("WFA_TEST_DATABASE_URL"):
        assert database_url.startswith(("postgres", "asyncpg", "psycopg"))


# ------------------------------------------------------------- revocation and the cap


def _token_record(key_id: str, minutes: float) -> TokenRecord:
    return TokenRecord(
        key_id=key_id,
        secret_fingerprint="f" * 16,
        expires_at=datetime.now(UTC) + timedelta(minutes=minutes),
    )


async def test_delete_tokens_for_key_deletes_that_keys_tokens_only(db: TortoiseContext) -> None:
    key, _ = await make_key()
    other, _ = await make_key(email="bob@acme.test")
    tokens = TortoiseTokenStore()
    for n in range(3):
        await tokens.save_token(f"{n:064x}", _token_record(key.key_id, 15))
    await tokens.save_token("e" * 64, _token_record(other.key_id, 15))

    await tokens.delete_tokens_for_key(key.key_id)

    assert await AccessToken.filter(key_id=key.key_id).count() == 0
    assert await tokens.get_token("e" * 64) is not None


async def test_delete_tokens_for_key_is_undone_with_its_transaction(db: TortoiseContext) -> None:
    key, _ = await make_key()
    tokens = TortoiseTokenStore()
    await tokens.save_token("a" * 64, _token_record(key.key_id, 15))

    async def failing_change() -> None:
        async with in_transaction():
            await tokens.delete_tokens_for_key(key.key_id)
            raise RuntimeError("the revoking change failed")

    with pytest.raises(RuntimeError):
        await failing_change()

    assert await tokens.get_token("a" * 64) is not None


async def test_saving_a_token_beyond_the_cap_evicts_the_oldest(db: TortoiseContext) -> None:
    key, _ = await make_key()
    tokens = TortoiseTokenStore()
    assert tokens.max_tokens_per_key == MAX_TOKENS_PER_KEY == 100
    for n in range(MAX_TOKENS_PER_KEY + 1):
        # Issued one after the other: each expires a little later than the one before.
        await tokens.save_token(f"{n:064x}", _token_record(key.key_id, 15 + n / 60))

    assert await AccessToken.filter(key_id=key.key_id).count() == MAX_TOKENS_PER_KEY
    assert await tokens.get_token(f"{0:064x}") is None
    assert await tokens.get_token(f"{MAX_TOKENS_PER_KEY:064x}") is not None


async def test_concurrent_token_saves_never_leave_more_than_the_cap(db: TortoiseContext) -> None:
    key, _ = await make_key()
    tokens = TortoiseTokenStore(max_tokens_per_key=5)

    await asyncio.gather(
        *(tokens.save_token(f"{n:064x}", _token_record(key.key_id, 15 + n / 60)) for n in range(30))
    )

    assert await AccessToken.filter(key_id=key.key_id).count() == 5


async def test_record_usage_writes_a_whole_flush_in_one_statement(
    db: TortoiseContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [(await make_key())[0] for _ in range(3)]
    when = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    await ApiKey.filter(key_id=keys[2].key_id).update(last_used_at=when + timedelta(hours=1))
    sent = sent_statements(monkeypatch)
    await TortoiseKeyStore().record_usage(
        {key.key_id: Usage(when + timedelta(minutes=n), None) for n, key in enumerate(keys)}
    )
    monkeypatch.undo()

    statements = [sql for sql in sent if "UPDATE" in sql.upper() and '"api_key"' in sql]
    assert len(statements) == 1
    for n, key in enumerate(keys[:2]):
        await key.refresh_from_db()
        assert key.last_used_at == when + timedelta(minutes=n)
    await keys[2].refresh_from_db()
    assert keys[2].last_used_at == when + timedelta(hours=1)  # a newer use stays


async def test_a_write_of_known_keys_last_uses_makes_no_lasting_object_a_key(
    db: TortoiseContext,
) -> None:
    """Once a minute a busy process writes the last use of every key that called, and the
    networks they were seen from: at 50,000 keys, objects made a key and alive across a
    statement (rows, per-key dicts, iterators) joined the oldest generation by the thousand a
    second, and brought a full collection every few seconds."""
    store = TortoiseKeyStore()
    keys = [f"wfak_gc{n:05d}" for n in range(2000)]
    when = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def uses(at: datetime) -> dict[str, Usage]:
        return {key_id: Usage(at, f"10.{n % 100}.{n // 100}.9") for n, key_id in enumerate(keys)}

    await store.record_usage(uses(when))  # each key's network remembered
    later = uses(when + timedelta(minutes=1))

    survivors = await young_survivors(store.record_usage(later))

    assert survivors < len(keys) / 10  # five a key before
    assert await ApiKey.filter(key_id__in=keys).count() == 0  # (only their networks exist)
    seen = await KeyNetwork.filter(key_id__in=keys).values_list("last_seen_at", flat=True)
    assert len(seen) == len(keys)
    assert set(seen) == {when + timedelta(minutes=1)}
