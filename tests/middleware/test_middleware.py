"""ApiKeyAuthMiddleware against the memory store: credentials, refusals, caching, throttling."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from support.clock import Clock, MonotonicClock
from support.keys import CountingStore, CountingVerifier, basic, bearer, client_for, inner_app
from wfa_auth import (
    ApiKeyAuthMiddleware,
    Argon2Verifier,
    Caching,
    Credentials,
    HeaderCredentialExtractor,
    MemoryKeyRecord,
    MemoryKeyStore,
    Throttling,
    Tokens,
    TTLCache,
    Usage,
    generate_key_id,
    generate_key_secret,
    token_digest,
)

Make = Callable[..., ApiKeyAuthMiddleware]
Key = tuple[MemoryKeyRecord, str]

INVALID_CREDENTIALS = {
    "error": "invalid_credentials",
    "message": "The Key ID or the Key Secret is not valid.",
}


async def get_token(app: Any, key_id: str, secret: str, ip: str = "10.0.0.1") -> str:
    async with client_for(app, ip) as client:
        response = await client.post(
            "/v1/auth/api-key/token", json={"key_id": key_id, "key_secret": secret}
        )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def whoami(app: Any, headers: dict[str, str], ip: str = "10.0.0.1") -> Any:
    async with client_for(app, ip) as client:
        return await client.get("/whoami", headers=headers)


# -- success ---------------------------------------------------------------------------------


async def test_basic_credentials_reach_the_app_with_the_key_owner_as_user(
    make_middleware: Make, key: Key
) -> None:
    record, secret = key
    response = await whoami(make_middleware(), basic(record.key_id, secret))
    assert response.status_code == 200
    assert response.json() == {
        "user": "ada@example.com",
        "identity": record.key_id,
        "scopes": ["authenticated"],
        "key_id": record.key_id,
        "key_name": "CI",
    }


async def test_key_headers_authenticate_like_basic(make_middleware: Make, key: Key) -> None:
    record, secret = key
    headers = {"X-API-Key-ID": record.key_id, "X-API-Key-Secret": secret}
    response = await whoami(make_middleware(), headers)
    assert response.status_code == 200
    assert response.json()["user"] == "ada@example.com"


async def test_bearer_token_from_the_token_endpoint_authenticates(
    make_middleware: Make, key: Key
) -> None:
    record, secret = key
    app = make_middleware(tokens=Tokens(ttl=600))
    async with client_for(app) as client:
        response = await client.post(
            "/v1/auth/api-key/token", json={"key_id": record.key_id, "key_secret": secret}
        )
        assert response.status_code == 200
        body = response.json()
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 600
        assert response.headers["cache-control"] == "no-store"
        response = await client.get("/whoami", headers=bearer(body["access_token"]))
    assert response.status_code == 200
    assert response.json()["key_id"] == record.key_id


async def test_requires_decorator_sees_the_scopes(make_middleware: Make, key: Key) -> None:
    record, secret = key
    async with client_for(make_middleware()) as client:
        ok = await client.get("/members", headers=basic(record.key_id, secret))
        forbidden = await client.get("/superpower", headers=basic(record.key_id, secret))
    assert ok.status_code == 200
    assert forbidden.status_code == 403


async def test_configured_scopes_reach_the_app(make_middleware: Make, key: Key) -> None:
    record, secret = key
    app = make_middleware(scopes=["authenticated", "superpower"])
    async with client_for(app) as client:
        response = await client.get("/superpower", headers=basic(record.key_id, secret))
    assert response.status_code == 200


async def test_token_endpoint_works_under_a_mount_point(make_middleware: Make, key: Key) -> None:
    record, secret = key
    app = make_middleware()
    async with client_for(app, root_path="/api") as client:
        response = await client.post(
            "/api/v1/auth/api-key/token", json={"key_id": record.key_id, "key_secret": secret}
        )
        assert response.status_code == 200
        token = response.json()["access_token"]
        response = await client.get("/api/whoami", headers=bearer(token))
    assert response.status_code == 200


# -- refusals before any lookup ------------------------------------------------------------


async def test_missing_credentials_are_refused_with_a_challenge(make_middleware: Make) -> None:
    response = await whoami(make_middleware(), {})
    assert response.status_code == 401
    assert response.json()["error"] == "missing_credentials"
    assert response.headers["www-authenticate"].startswith("Bearer realm=")


async def test_query_string_credentials_are_never_accepted(make_middleware: Make, key: Key) -> None:
    record, secret = key
    async with client_for(make_middleware()) as client:
        response = await client.get(
            "/whoami", params={"key_id": record.key_id, "key_secret": secret}
        )
    assert response.status_code == 401
    assert response.json()["error"] == "missing_credentials"


async def test_anonymous_requests_pass_when_allowed_and_requires_refuses_them(
    make_middleware: Make,
) -> None:
    async with client_for(make_middleware(allow_anonymous=True)) as client:
        response = await client.get("/members")
    assert response.status_code == 403


def only_key_id_header(key_id: str, secret: str) -> dict[str, str]:
    return {"X-API-Key-ID": key_id}


def basic_without_colon(key_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(key_id.encode()).decode()}


def basic_not_base64(key_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic %%%"}


def empty_bearer(key_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Bearer "}


def unknown_scheme(key_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": f"Digest {key_id}"}


def basic_and_key_headers(key_id: str, secret: str) -> dict[str, str]:
    return {**basic(key_id, secret), "X-API-Key-ID": key_id, "X-API-Key-Secret": secret}


@pytest.mark.parametrize(
    "headers",
    [
        only_key_id_header,
        basic_without_colon,
        basic_not_base64,
        empty_bearer,
        unknown_scheme,
        basic_and_key_headers,
    ],
)
async def test_malformed_credentials_are_refused_as_invalid_request(
    make_middleware: Make, key: Key, store: CountingStore, headers: Callable[..., dict[str, str]]
) -> None:
    record, secret = key
    response = await whoami(make_middleware(), headers(record.key_id, secret))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_request"
    assert secret not in response.text
    assert store.lookups == 0


def wrong_checksum(secret: str) -> str:
    return secret[:-1] + ("A" if secret[-1] != "A" else "B")


def wrong_prefix(secret: str) -> str:
    return "xxxx_" + secret[5:]


def truncated(secret: str) -> str:
    return secret[:-2]


def empty(secret: str) -> str:
    return ""


@pytest.mark.parametrize("corrupt", [wrong_checksum, wrong_prefix, truncated, empty])
async def test_bad_secret_format_is_refused_before_any_lookup_or_hashing(
    make_middleware: Make,
    key: Key,
    store: CountingStore,
    verifier: CountingVerifier,
    corrupt: Callable[[str], str],
) -> None:
    record, secret = key
    response = await whoami(make_middleware(), basic(record.key_id, corrupt(secret)))
    assert response.status_code == 401
    assert response.json() == INVALID_CREDENTIALS
    assert store.lookups == 0
    assert verifier.verify_calls == 0


# -- refusals that must not tell which Key IDs exist -----------------------------------------


def unknown_key(store: MemoryKeyStore, record: MemoryKeyRecord, secret: str) -> tuple[str, str]:
    return generate_key_id(), secret


def wrong_secret(store: MemoryKeyStore, record: MemoryKeyRecord, secret: str) -> tuple[str, str]:
    return record.key_id, generate_key_secret()


def deleted_key(store: MemoryKeyStore, record: MemoryKeyRecord, secret: str) -> tuple[str, str]:
    store.remove(record.key_id)
    return record.key_id, secret


@pytest.mark.parametrize("situation", [unknown_key, wrong_secret, deleted_key])
async def test_unknown_wrong_or_deleted_keys_get_one_answer_after_one_verification(
    make_middleware: Make,
    key: Key,
    store: CountingStore,
    verifier: CountingVerifier,
    situation: Callable[..., tuple[str, str]],
) -> None:
    key_id, secret = situation(store, *key)
    app = make_middleware()
    response = await whoami(app, basic(key_id, secret))
    assert response.status_code == 401
    assert response.json() == INVALID_CREDENTIALS
    assert response.headers["www-authenticate"].startswith("Bearer")
    # Unknown IDs are verified against the dummy hash: the same argon2 work as a real key.
    assert verifier.verify_calls == 1


async def test_unknown_key_id_is_verified_against_the_dummy_hash(
    make_middleware: Make, verifier: CountingVerifier
) -> None:
    await whoami(make_middleware(), basic(generate_key_id(), generate_key_secret()))
    assert verifier.verified_hashes == [verifier.dummy_hash]


async def test_another_organizations_key_gets_the_same_answer(
    make_middleware: Make, key: Key, verifier: CountingVerifier
) -> None:
    record, secret = key
    app = make_middleware(organization_id="Globex")
    response = await whoami(app, basic(record.key_id, secret))
    assert response.status_code == 401
    assert response.json() == INVALID_CREDENTIALS
    assert verifier.verify_calls == 1


# -- refusals that name the reason once the secret matched -----------------------------------


@pytest.mark.parametrize(
    ("changes", "status", "error"),
    [
        ({"enabled": False}, 401, "key_disabled"),
        ({"expires_at": "past"}, 401, "key_expired"),
        ({"owner_is_active_admin": False}, 401, "key_owner_inactive"),
        ({"organization_subscribed": False}, 403, "subscription_required"),
    ],
)
async def test_key_state_is_named_only_with_the_right_secret(
    make_middleware: Make,
    key: Key,
    store: CountingStore,
    changes: dict[str, Any],
    status: int,
    error: str,
) -> None:
    record, secret = key
    clock = Clock()
    if changes.get("expires_at") == "past":
        changes = {"expires_at": clock.now - timedelta(seconds=1)}
    store.update(record.key_id, **changes)
    app = make_middleware(clock=clock)
    right = await whoami(app, basic(record.key_id, secret))
    wrong = await whoami(app, basic(record.key_id, generate_key_secret()))
    assert right.status_code == status
    assert right.json()["error"] == error
    assert wrong.status_code == 401
    assert wrong.json() == INVALID_CREDENTIALS


# -- failing closed --------------------------------------------------------------------------


class BrokenStore(MemoryKeyStore):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def get_key(self, key_id: str) -> MemoryKeyRecord | None:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [OSError("db down"), ConnectionRefusedError(111, "refused"), RuntimeError("pool closed")],
)
@pytest.mark.parametrize("mode", ["basic", "bearer", "token"])
async def test_store_errors_answer_503_with_retry_after(
    make_middleware: Make, key: Key, store: CountingStore, error: Exception, mode: str
) -> None:
    record, secret = key
    good = make_middleware()
    token = await get_token(good, record.key_id, secret)
    broken = BrokenStore(error)
    app = make_middleware(store=broken, token_store=good.authenticator.token_store)
    async with client_for(app) as client:
        if mode == "basic":
            response = await client.get("/whoami", headers=basic(record.key_id, secret))
        elif mode == "bearer":
            response = await client.get("/whoami", headers=bearer(token))
        else:
            response = await client.post(
                "/v1/auth/api-key/token", json={"key_id": record.key_id, "key_secret": secret}
            )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"] == "service_unavailable"
    assert "db down" not in response.text
    assert "refused" not in response.text


# -- caching ---------------------------------------------------------------------------------


async def test_warm_basic_requests_cost_no_hashing_and_no_lookup(
    make_middleware: Make, key: Key, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = key
    app = make_middleware()
    for _ in range(5):
        assert (await whoami(app, basic(record.key_id, secret))).status_code == 200
    assert verifier.verify_calls == 1
    assert store.lookups == 1


class CountingExtractor(HeaderCredentialExtractor):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def extract(self, scope: Any) -> Credentials | None:
        self.calls += 1
        return super().extract(scope)


async def test_a_warm_authorization_header_is_found_without_parsing_it(
    key: Key, store: CountingStore, verifier: CountingVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    record, secret = key
    app = ApiKeyAuthMiddleware(inner_app(), store=store, verifier=verifier)
    token = await get_token(app, record.key_id, secret)
    parsed = 0
    extract = HeaderCredentialExtractor.extract

    def counting(self: HeaderCredentialExtractor, scope: Any) -> Credentials | None:
        nonlocal parsed
        parsed += 1
        return extract(self, scope)

    monkeypatch.setattr(HeaderCredentialExtractor, "extract", counting)
    for headers in (bearer(token), basic(record.key_id, secret)):
        for _ in range(3):
            assert (await whoami(app, headers)).status_code == 200
    # The first call of each header was parsed; the next two were found by the header alone.
    assert parsed == 2
    assert verifier.verify_calls == 1
    # The same credentials in the key headers, or beside another header, are parsed again.
    key_headers = {"X-API-Key-ID": record.key_id, "X-API-Key-Secret": secret}
    assert (await whoami(app, key_headers)).status_code == 200
    assert parsed == 3


@pytest.mark.parametrize("extra", ["authorization", "x-api-key-id", "x-api-key-secret"])
async def test_a_warm_authorization_header_beside_another_credential_header_is_malformed(
    make_middleware: Make, key: Key, extra: str
) -> None:
    record, secret = key
    app = make_middleware()
    (value,) = basic(record.key_id, secret).values()
    assert (await whoami(app, {"Authorization": value})).status_code == 200
    async with client_for(app) as client:
        response = await client.get("/whoami", headers=[("Authorization", value), (extra, value)])
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_request"


async def test_the_warm_memo_holds_digests_never_a_secret_token_or_header(
    make_middleware: Make, key: Key
) -> None:
    # SECURITY.md: a warm request is found under a keyed digest of its credentials or of its
    # Authorization header, never under the secret or the header.
    record, secret = key
    app = make_middleware()
    token = await get_token(app, record.key_id, secret)
    headers = [bearer(token), basic(record.key_id, secret)]
    headers.append({"X-API-Key-ID": record.key_id, "X-API-Key-Secret": secret})
    for each in headers:
        assert (await whoami(app, each)).status_code == 200
    memo = app.authenticator._warm
    # One entry per credential as presented: the Bearer header, the Basic header, and the key
    # headers (found under the credentials, as the token exchange's body).
    assert len(memo) == 3
    plain = [secret, token, *(v for each in headers for v in each.values())]
    for digest in memo:
        assert len(digest) == 16
        assert not any(value.encode() in digest or digest in value.encode() for value in plain)


async def test_a_custom_extractor_reads_every_request(make_middleware: Make, key: Key) -> None:
    record, secret = key
    extractor = CountingExtractor()
    app = make_middleware(extractor=extractor)
    for _ in range(3):
        assert (await whoami(app, basic(record.key_id, secret))).status_code == 200
    assert extractor.calls == 3


async def test_a_warm_authorization_header_is_refused_from_the_next_call_after_a_change(
    make_middleware: Make, key: Key, store: CountingStore
) -> None:
    record, secret = key
    app = make_middleware()
    token = await get_token(app, record.key_id, secret)
    for headers in (bearer(token), basic(record.key_id, secret)):
        assert (await whoami(app, headers)).status_code == 200
    store.update(record.key_id, enabled=False)
    await app.key_changed(record.key_id)
    for headers in (bearer(token), basic(record.key_id, secret)):
        assert (await whoami(app, headers)).json()["error"] == "key_disabled"


async def test_argon2_runs_off_the_event_loop_thread(
    make_middleware: Make, key: Key, verifier: CountingVerifier
) -> None:
    record, secret = key
    await whoami(make_middleware(), basic(record.key_id, secret))
    assert verifier.threads
    assert threading.get_ident() not in verifier.threads


async def test_concurrent_verifications_are_capped(make_middleware: Make) -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    class SlowVerifier(CountingVerifier):
        def verify(self, secret_hash: str, secret: str) -> bool:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            try:
                return super().verify(secret_hash, secret)
            finally:
                with lock:
                    running -= 1

    slow = SlowVerifier()
    store = MemoryKeyStore()
    keys = [
        store.create_key(slow, name=f"k{i}", owner_email="a@b.c", organization_name="Acme")
        for i in range(8)
    ]
    app = make_middleware(
        store=store, verifier=slow, caching=Caching(max_concurrent_verifications=2)
    )
    responses = await asyncio.gather(*(whoami(app, basic(r.key_id, s)) for r, s in keys))
    assert [r.status_code for r in responses] == [200] * 8
    assert 1 <= most <= 2


async def test_disabled_key_is_refused_on_next_call_and_works_again_when_enabled(
    make_middleware: Make, key: Key, store: CountingStore
) -> None:
    record, secret = key
    app = make_middleware(caching=Caching(record_ttl=3600))
    token = await get_token(app, record.key_id, secret)
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200
    store.update(record.key_id, enabled=False)
    await app.key_changed(record.key_id)
    assert (await whoami(app, basic(record.key_id, secret))).json()["error"] == "key_disabled"
    assert (await whoami(app, bearer(token))).json()["error"] == "key_disabled"
    store.update(record.key_id, enabled=True)
    await app.key_changed(record.key_id)
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200
    assert (await whoami(app, bearer(token))).status_code == 200


async def test_regenerated_secret_refuses_the_old_one_and_accepts_the_new_one(
    make_middleware: Make, key: Key, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, old_secret = key
    app = make_middleware(caching=Caching(record_ttl=3600))
    assert (await whoami(app, basic(record.key_id, old_secret))).status_code == 200
    new_secret = generate_key_secret()
    store.update(record.key_id, secret_hash=verifier.hash(new_secret))
    await app.key_changed(record.key_id)
    old = await whoami(app, basic(record.key_id, old_secret))
    assert old.status_code == 401
    assert old.json() == INVALID_CREDENTIALS
    assert (await whoami(app, basic(record.key_id, new_secret))).status_code == 200


async def test_change_from_another_process_is_seen_once_the_cached_record_expires(
    make_middleware: Make, key: Key, store: CountingStore
) -> None:
    record, secret = key
    now = [0.0]
    app = make_middleware(
        cache=TTLCache(clock=lambda: now[0]), timer=lambda: now[0], caching=Caching(record_ttl=5)
    )
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200
    store.update(record.key_id, enabled=False)  # no key_changed: another process did it
    now[0] = 4.0
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200
    now[0] = 5.0
    response = await whoami(app, basic(record.key_id, secret))
    assert response.status_code == 401
    assert response.json()["error"] == "key_disabled"


class GatedStore(MemoryKeyStore):
    """Holds the next lookup until the test opens the gate, after it read the record."""

    def __init__(self) -> None:
        super().__init__()
        self.read = asyncio.Event()
        self.gate = asyncio.Event()
        self.hold = True

    async def get_key(self, key_id: str) -> MemoryKeyRecord | None:
        record = self.keys.get(key_id)
        if self.hold:
            self.hold = False
            self.read.set()
            await self.gate.wait()
        return record


async def test_lookup_overlapping_key_changed_neither_passes_nor_caches_the_stale_record(
    make_middleware: Make, verifier: CountingVerifier
) -> None:
    store = GatedStore()
    record, secret = store.create_key(
        verifier, name="CI", owner_email="ada@example.com", organization_name="Acme"
    )
    app = make_middleware(store=store, caching=Caching(record_ttl=3600))
    pending = asyncio.create_task(whoami(app, basic(record.key_id, secret)))
    await store.read.wait()  # the lookup has read the enabled record
    store.update(record.key_id, enabled=False)
    await app.key_changed(record.key_id)
    store.gate.set()
    stale = await pending
    assert stale.status_code == 401
    assert stale.json()["error"] == "key_disabled"
    later = await whoami(app, basic(record.key_id, secret))
    assert later.json()["error"] == "key_disabled"


# -- websockets ------------------------------------------------------------------------------


def test_websocket_with_credentials_is_accepted_and_without_is_closed(key: Key) -> None:
    record, secret = key
    verifier = CountingVerifier()
    store = MemoryKeyStore()
    store.add(dataclasses.replace(record, secret_hash=verifier.hash(secret)))
    app = ApiKeyAuthMiddleware(inner_app(), store=store, verifier=verifier)
    with TestClient(app) as client:
        with client.websocket_connect("/ws", headers=basic(record.key_id, secret)) as ws:
            assert ws.receive_json() == {"user": "ada@example.com"}
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws"):
            pass
    assert refused.value.code == 1008


# -- logs ------------------------------------------------------------------------------------


async def test_no_secret_token_or_hash_reaches_any_log_record(
    make_middleware: Make, key: Key, store: CountingStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    record, secret = key
    wrong = generate_key_secret()
    app = make_middleware(throttling=Throttling(max_failures_per_key_and_ip=2))
    token = await get_token(app, record.key_id, secret)
    await whoami(app, bearer(token))
    await whoami(app, basic(record.key_id, secret))
    await whoami(app, {"X-API-Key-ID": record.key_id, "X-API-Key-Secret": secret})
    for _ in range(3):
        await whoami(app, basic(record.key_id, wrong))
    await whoami(app, basic(record.key_id, wrong_checksum(secret)))
    await whoami(app, bearer(token + "x"))
    broken = make_middleware(store=BrokenStore(OSError(f"cannot use {secret}")))
    await whoami(broken, basic(record.key_id, secret))
    store.update(record.key_id, enabled=False)
    await app.key_changed(record.key_id)
    await whoami(app, bearer(token))
    text = "\n".join(
        f"{r.getMessage()} {r.args!r} {r.exc_text or ''} {r.__dict__}" for r in caplog.records
    )
    assert caplog.records, "the scenario logs something"
    assert record.key_id in text  # Key IDs are public and useful in logs
    for forbidden in (secret, wrong, token, token_digest(token), record.secret_hash):
        assert forbidden not in text
    assert "service_unavailable" in text or "unavailable" in text


# -- rehashing -------------------------------------------------------------------------------


async def test_a_secret_hashed_with_old_parameters_is_rehashed_after_it_matched(
    make_middleware: Make,
) -> None:
    old = CountingVerifier()
    current = Argon2Verifier(time_cost=2, memory_cost_kib=8, parallelism=1)
    store = MemoryKeyStore()
    record, secret = store.create_key(
        old, name="CI", owner_email="ada@example.com", organization_name="Acme"
    )
    app = make_middleware(store=store, verifier=current)
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200
    rehashed = store.keys[record.key_id].secret_hash
    assert rehashed != record.secret_hash
    assert not current.needs_rehash(rehashed)
    assert current.verify(rehashed, secret)
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200


async def test_a_warm_key_stops_working_when_it_expires(
    make_middleware: Make, key: Key, store: CountingStore
) -> None:
    record, secret = key
    clock = Clock()
    store.update(record.key_id, expires_at=clock.now + timedelta(seconds=60))
    app = make_middleware(clock=clock, caching=Caching(record_ttl=3600))
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200
    clock.now += timedelta(seconds=59)
    assert (await whoami(app, basic(record.key_id, secret))).status_code == 200
    clock.now += timedelta(seconds=1)
    response = await whoami(app, basic(record.key_id, secret))
    assert (response.status_code, response.json()["error"]) == (401, "key_expired")


# -- public paths ----------------------------------------------------------------------------


async def echo_user(scope: Any, receive: Any, send: Any) -> None:
    body = f"{scope['user'].is_authenticated} {scope['path']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/health", 200),
        ("/docs", 200),
        ("/docs/", 200),
        ("/docs/openapi.json", 200),
        ("/healthz", 401),
        ("/health/x", 401),
        ("/whoami", 401),
        ("/docs/../whoami", 401),
        ("/docs/./x", 401),
        ("/docs/x/..", 401),
    ],
)
async def test_public_paths_pass_without_credentials(
    store: CountingStore, verifier: CountingVerifier, path: str, status: int
) -> None:
    app = ApiKeyAuthMiddleware(
        echo_user, store=store, verifier=verifier, public_paths=["/health", "/docs*"]
    )
    # A raw scope: HTTP clients remove dot segments before sending, a hand-made request may not.
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [],
        "client": None,
    }
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] == status
    if status == 200:
        assert sent[1]["body"] == f"False {path}".encode()


async def test_public_paths_are_relative_to_the_mount_point_and_ignore_credentials(
    key: Key, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, _ = key
    app = ApiKeyAuthMiddleware(echo_user, store=store, verifier=verifier, public_paths=["/health"])
    async with client_for(app, root_path="/api") as client:
        mounted = await client.get("/api/health", headers=basic(record.key_id, "wrong"))
        other = await client.get("/api/v1/health")
    assert mounted.status_code == 200
    assert other.status_code == 401
    assert (store.lookups, verifier.verify_calls) == (0, 0)


# -- observer --------------------------------------------------------------------------------


class RecordingObserver:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.verifications: list[float] = []

    def on_authenticated(self, *, warm: bool) -> None:
        self.events.append(("authenticated", warm))

    def on_refused(self, error: str) -> None:
        self.events.append(("refused", error))

    def on_verification(self, seconds: float) -> None:
        self.verifications.append(seconds)


async def test_the_observer_is_told_of_every_outcome(
    make_middleware: Make, key: Key, verifier: CountingVerifier
) -> None:
    record, secret = key
    observer = RecordingObserver()
    app = make_middleware(observer=observer, throttling=Throttling(max_failures_per_key_and_ip=1))
    await whoami(app, basic(record.key_id, secret))
    await whoami(app, basic(record.key_id, secret))
    token = await get_token(app, record.key_id, secret)
    await whoami(app, bearer(token))
    await whoami(app, {})
    await whoami(app, basic(record.key_id, wrong_checksum(secret)))
    await whoami(app, basic(record.key_id, generate_key_secret()))
    await whoami(app, basic(record.key_id, generate_key_secret()))
    await whoami(app, basic(generate_key_id(), generate_key_secret()), ip="10.0.0.2")
    assert observer.events == [
        ("authenticated", False),
        ("authenticated", True),
        # The token exchange: the credentials in another form, a memo entry of their own
        # (one entry per credential as presented), found by their verified marker (no argon2).
        ("authenticated", False),
        ("authenticated", False),  # the token's first use
        ("refused", "missing_credentials"),
        ("refused", "invalid_credentials"),
        ("refused", "invalid_credentials"),
        ("refused", "too_many_attempts"),
        ("refused", "invalid_credentials"),
    ]
    # One per argon2 run: the right secret, a wrong one, the dummy hash of an unknown Key ID.
    assert len(observer.verifications) == verifier.verify_calls == 3
    assert all(seconds >= 0 for seconds in observer.verifications)


# -- last used -------------------------------------------------------------------------------


class RecordingStore(CountingStore):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[dict[str, Any]] = []

    async def record_usage(self, last_used: Any) -> None:
        self.writes.append(dict(last_used))
        await super().record_usage(last_used)


async def test_last_use_is_written_at_once_then_at_most_once_per_interval_with_the_latest_use(
    make_middleware: Make, verifier: CountingVerifier
) -> None:
    store = RecordingStore()
    record, secret = store.create_key(
        verifier, name="CI", owner_email="ada@example.com", organization_name="Acme"
    )
    clock = Clock()
    start = clock.now
    app = make_middleware(store=store, clock=clock, caching=Caching(usage_interval=60))
    for _ in range(3):
        assert (await whoami(app, basic(record.key_id, secret))).status_code == 200
        clock.advance(20)
    # Uses at 0, 20 and 40: the first written at once, the others deferred.
    assert store.writes == [{record.key_id: Usage(start, "10.0.0.1")}]
    clock.advance(1)  # 61: the key's interval has ended; this response writes the latest use
    await whoami(app, basic(record.key_id, secret), ip="10.0.0.2")
    assert store.writes[1] == {record.key_id: Usage(start + timedelta(seconds=61), "10.0.0.2")}
    clock.advance(9)
    # 70: deferred again, not dropped, and written with the address of that latest use.
    await whoami(app, basic(record.key_id, secret), ip="2001:db8::7")
    assert len(store.writes) == 2
    await app.flush_usage()
    latest = Usage(start + timedelta(seconds=70), "2001:db8::7")
    assert store.writes[2] == {record.key_id: latest}
    assert store.last_used[record.key_id] == latest


async def test_lifespan_runs_the_usage_timer_and_flushes_before_the_app_shuts_down(
    verifier: CountingVerifier,
) -> None:
    store = RecordingStore()
    seen: list[tuple[str, int]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            seen.append((message["type"], len(store.writes)))
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    timer = MonotonicClock()
    middleware = ApiKeyAuthMiddleware(app, store=store, verifier=verifier, timer=timer)
    started = asyncio.Event()
    stop = asyncio.Event()
    sent: list[str] = []

    async def receive() -> Any:
        if not started.is_set():
            started.set()
            return {"type": "lifespan.startup"}
        await stop.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message: Any) -> None:
        sent.append(message["type"])

    server = asyncio.create_task(middleware({"type": "lifespan"}, receive, send))
    await started.wait()
    middleware.usage.note("wfak_first", timer())
    await asyncio.sleep(0)  # the timer task writes it, no request needed
    for _ in range(5):
        await asyncio.sleep(0)
    assert [list(w) for w in store.writes] == [["wfak_first"]]
    timer.advance(1)
    middleware.usage.note("wfak_first", timer())  # deferred to the end of its interval
    stop.set()
    await server
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert [list(w) for w in store.writes] == [["wfak_first"], ["wfak_first"]]
    # The pending use was written before the app saw the shutdown (and closed its database).
    assert seen == [("lifespan.startup", 0), ("lifespan.shutdown", 2)]
