"""The token exchange: issuing access tokens, their lifetime and their revocation."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from support.clock import Clock
from support.keys import CountingStore, CountingVerifier, basic, bearer, client_for
from wfa_auth import (
    ApiKeyAuthMiddleware,
    Caching,
    MemoryKeyRecord,
    MemoryTokenStore,
    Tokens,
    Usage,
    generate_key_secret,
    secret_fingerprint,
    token_digest,
)

Make = Callable[..., ApiKeyAuthMiddleware]
Key = tuple[MemoryKeyRecord, str]
TOKEN_PATH = "/v1/auth/api-key/token"


async def post_token(app: Any, body: Any = None, **kwargs: Any) -> Any:
    async with client_for(app) as client:
        if body is not None:
            kwargs["json"] = body
        return await client.post(TOKEN_PATH, **kwargs)


async def issue(app: Any, record: MemoryKeyRecord, secret: str) -> str:
    response = await post_token(app, {"key_id": record.key_id, "key_secret": secret})
    assert response.status_code == 200
    token: str = response.json()["access_token"]
    return token


async def whoami(app: Any, token: str) -> Any:
    async with client_for(app) as client:
        return await client.get("/whoami", headers=bearer(token))


async def test_tokens_are_stored_only_as_digests_with_the_secret_fingerprint(
    make_middleware: Make, key: Key
) -> None:
    record, secret = key
    tokens = MemoryTokenStore()
    clock = Clock()
    app = make_middleware(token_store=tokens, tokens=Tokens(ttl=120), clock=clock)
    response = await post_token(app, {"key_id": record.key_id, "key_secret": secret})
    token = response.json()["access_token"]
    assert len(token) >= 43
    assert list(tokens.tokens) == [hashlib.sha256(token.encode()).hexdigest()]
    stored = tokens.tokens[token_digest(token)]
    assert stored.key_id == record.key_id
    assert stored.secret_fingerprint == secret_fingerprint(record.secret_hash)
    assert stored.expires_at == clock.now + timedelta(seconds=120)
    assert token not in repr(stored)


async def test_each_exchange_issues_a_different_token(make_middleware: Make, key: Key) -> None:
    record, secret = key
    app = make_middleware()
    body = {"key_id": record.key_id, "key_secret": secret}
    first = (await post_token(app, body)).json()["access_token"]
    second = (await post_token(app, body)).json()["access_token"]
    assert first != second
    assert (await whoami(app, first)).status_code == 200
    assert (await whoami(app, second)).status_code == 200


async def test_token_expires_after_its_lifetime(make_middleware: Make, key: Key) -> None:
    record, secret = key
    tokens = MemoryTokenStore()
    clock = Clock()
    app = make_middleware(token_store=tokens, tokens=Tokens(ttl=60), clock=clock)
    token = await issue(app, record, secret)
    clock.now += timedelta(seconds=59)
    assert (await whoami(app, token)).status_code == 200
    clock.now += timedelta(seconds=1)
    response = await whoami(app, token)
    assert response.status_code == 401
    assert response.json()["error"] == "token_expired"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert tokens.tokens == {}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"enabled": False}, "key_disabled"),
        ({"owner_is_active_admin": False}, "key_owner_inactive"),
        ({"organization_subscribed": False}, "subscription_required"),
        ({"secret_hash": "regenerate"}, "invalid_token"),
        ({"deleted": True}, "invalid_token"),
        ({"expires_at": "now"}, "key_expired"),
    ],
)
async def test_token_stops_working_at_once_when_its_key_changes(
    make_middleware: Make,
    key: Key,
    store: CountingStore,
    verifier: CountingVerifier,
    change: dict[str, Any],
    error: str,
) -> None:
    record, secret = key
    clock = Clock()
    app = make_middleware(caching=Caching(record_ttl=3600), clock=clock)
    token = await issue(app, record, secret)
    assert (await whoami(app, token)).status_code == 200
    if "deleted" in change:
        store.remove(record.key_id)
    elif change.get("secret_hash") == "regenerate":
        store.update(record.key_id, secret_hash=verifier.hash(generate_key_secret()))
    elif change.get("expires_at") == "now":
        store.update(record.key_id, expires_at=clock.now)
    else:
        store.update(record.key_id, **change)
    await app.key_changed(record.key_id)
    response = await whoami(app, token)
    assert response.json()["error"] == error
    assert response.status_code == (403 if error == "subscription_required" else 401)


async def test_tokens_of_a_regenerated_key_stay_revoked_when_it_is_enabled_again(
    make_middleware: Make, key: Key, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = key
    app = make_middleware()
    token = await issue(app, record, secret)
    new_secret = generate_key_secret()
    store.update(record.key_id, secret_hash=verifier.hash(new_secret))
    await app.key_changed(record.key_id)
    assert (await whoami(app, token)).json()["error"] == "invalid_token"
    new = await post_token(app, {"key_id": record.key_id, "key_secret": new_secret})
    assert (await whoami(app, new.json()["access_token"])).status_code == 200
    assert (await whoami(app, token)).json()["error"] == "invalid_token"


async def test_warm_bearer_requests_cost_no_hashing_and_no_lookup(
    make_middleware: Make, key: Key, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = key
    app = make_middleware()
    token = await issue(app, record, secret)
    calls, lookups = verifier.verify_calls, store.lookups
    for _ in range(5):
        assert (await whoami(app, token)).status_code == 200
    assert (verifier.verify_calls, store.lookups) == (calls, lookups)


async def test_token_endpoint_refuses_wrong_credentials_like_any_call(
    make_middleware: Make, key: Key
) -> None:
    record, _ = key
    response = await post_token(
        app=make_middleware(), body={"key_id": record.key_id, "key_secret": generate_key_secret()}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_credentials"
    assert "access_token" not in response.text


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"key_id": "wfak_x"}',
        b'{"key_id": 1, "key_secret": 2}',
        b"\xff\xfe",
    ],
)
async def test_token_endpoint_answers_400_to_a_bad_body(make_middleware: Make, body: bytes) -> None:
    response = await post_token(make_middleware(), content=body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_token_endpoint_refuses_a_body_that_is_too_large(make_middleware: Make) -> None:
    response = await post_token(
        make_middleware(tokens=Tokens(max_request_bytes=100)), content=b"x" * 101
    )
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"


async def test_token_endpoint_only_answers_post(make_middleware: Make) -> None:
    async with client_for(make_middleware()) as client:
        response = await client.get(TOKEN_PATH)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_token_endpoint_ignores_credentials_in_the_query_string(
    make_middleware: Make, key: Key
) -> None:
    record, secret = key
    response = await post_token(
        make_middleware(), params={"key_id": record.key_id, "key_secret": secret}
    )
    assert response.status_code == 400


async def test_token_path_can_be_moved_or_turned_off(make_middleware: Make, key: Key) -> None:
    record, secret = key
    body = {"key_id": record.key_id, "key_secret": secret}
    moved = make_middleware(tokens=Tokens(path="/oauth/token"))
    async with client_for(moved) as client:
        assert (await client.post("/oauth/token", json=body)).status_code == 200
    off = make_middleware(tokens=Tokens(path=None))
    async with client_for(off) as client:
        # No endpoint: the path is an ordinary route behind the middleware (404 once through).
        response = await client.post(TOKEN_PATH, json=body, headers=basic(record.key_id, secret))
    assert response.status_code == 404


async def test_tokens_beyond_the_cap_evict_the_oldest(make_middleware: Make, key: Key) -> None:
    record, secret = key
    tokens = MemoryTokenStore()
    clock = Clock()
    app = make_middleware(token_store=tokens, tokens=Tokens(max_per_key=3), clock=clock)
    issued = []
    for _ in range(4):
        issued.append(await issue(app, record, secret))
        clock.advance(1)
    assert sorted(tokens.tokens) == sorted(token_digest(t) for t in issued[1:])
    refused = await whoami(app, issued[0])
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_token")
    for token in issued[1:]:
        assert (await whoami(app, token)).status_code == 200


async def test_deleting_a_keys_tokens_revokes_them_once_the_key_is_changed(
    make_middleware: Make, key: Key
) -> None:
    record, secret = key
    tokens = MemoryTokenStore()
    app = make_middleware(token_store=tokens, caching=Caching(record_ttl=3600))
    token = await issue(app, record, secret)
    assert (await whoami(app, token)).status_code == 200
    await tokens.delete_tokens_for_key(record.key_id)
    await app.key_changed(record.key_id)
    response = await whoami(app, token)
    assert (response.status_code, response.json()["error"]) == (401, "invalid_token")
    # Revoked, not suspended: the key itself still works and gets new tokens.
    assert (await whoami(app, await issue(app, record, secret))).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 2000,
        b'{"key_id": ' * 2000,
    ],
)
async def test_a_deeply_nested_token_request_is_a_400(make_middleware: Make, body: bytes) -> None:
    app = make_middleware(tokens=Tokens(max_request_bytes=100_000))
    response = await post_token(app, content=body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "body",
    [
        b'{"key_id": "wfak_\\ud800", "key_secret": "wfas_\\udfff"}',
        # UTF-8-encoded surrogates, which json.loads(bytes) lets through ("surrogatepass").
        b'{"key_id": "\xed\xa0\x80", "key_secret": "wfas_\xed\xbf\xbf"}',
        # Anywhere in the body, not only in the credentials.
        b'{"key_id": "wfak_x", "key_secret": "wfas_x", "\\udc00": 1}',
        b'{"key_id": "wfak_x", "key_secret": "wfas_x", "note": ["\\ud83d"]}',
        # Bytes that are not UTF-8 at all.
        b'{"key_id": "wfak_\xff", "key_secret": "wfas_x"}',
    ],
)
async def test_lone_surrogates_and_bytes_not_utf8_in_a_token_request_are_a_400(
    make_middleware: Make, store: CountingStore, body: bytes
) -> None:
    response = await post_token(make_middleware(), content=body)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    assert store.lookups == 0


async def test_a_surrogate_pair_in_a_token_request_is_text_like_any_other(
    make_middleware: Make,
) -> None:
    # One emoji, escaped as JSON writes it: a valid pair, so merely wrong credentials.
    body = b'{"key_id": "wfak_\\ud83d\\ude00", "key_secret": "wfas_x"}'
    response = await post_token(make_middleware(), content=body)
    assert (response.status_code, response.json()["error"]) == (401, "invalid_credentials")


async def test_a_token_exchange_records_the_keys_use(
    make_middleware: Make, key: Key, store: CountingStore
) -> None:
    record, secret = key
    clock = Clock()
    await issue(make_middleware(clock=clock), record, secret)
    assert store.last_used == {record.key_id: Usage(clock.now, "10.0.0.1")}
