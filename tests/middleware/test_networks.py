"""Address allow-lists: a key with allowed_cidrs works only from inside those networks."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

import pytest

from support.keys import CountingStore, CountingVerifier, basic, bearer, client_for
from wfa_auth import ApiKeyAuthMiddleware, MemoryKeyRecord

Make = Callable[..., ApiKeyAuthMiddleware]
IP_NOT_ALLOWED = {
    "error": "ip_not_allowed",
    "message": "This API key may not be used from this network address.",
}


def allow_listed(store: CountingStore, verifier: CountingVerifier) -> tuple[MemoryKeyRecord, str]:
    return store.create_key(
        verifier,
        name="Office",
        owner_email="ada@example.com",
        organization_name="Acme",
        allowed_cidrs=["10.1.0.0/16", "2001:db8::/32"],
    )


async def call(app: Any, ip: str, headers: dict[str, str]) -> Any:
    async with client_for(app, ip) as client:
        return await client.get("/whoami", headers=headers)


@pytest.mark.parametrize("ip", ["10.1.2.3", "10.1.255.255", "2001:db8::7", "::ffff:10.1.0.9"])
async def test_a_call_from_inside_an_allowed_network_is_accepted(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier, ip: str
) -> None:
    record, secret = allow_listed(store, verifier)
    response = await call(make_middleware(), ip, basic(record.key_id, secret))
    assert response.status_code == 200


@pytest.mark.parametrize(
    "ip", ["10.2.0.1", "192.168.1.1", "2001:db9::1", "::ffff:10.2.0.1", "not-an-ip", "", "::1"]
)
async def test_a_call_from_outside_is_refused_403_ip_not_allowed(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier, ip: str
) -> None:
    record, secret = allow_listed(store, verifier)
    response = await call(make_middleware(), ip, basic(record.key_id, secret))
    assert response.status_code == 403
    assert response.json() == IP_NOT_ALLOWED


async def test_a_wrong_secret_from_outside_is_invalid_credentials_not_ip_not_allowed(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, _ = allow_listed(store, verifier)
    _, other_secret = store.create_key(
        verifier, name="x", owner_email="a@example.com", organization_name="Acme"
    )
    response = await call(make_middleware(), "192.168.1.1", basic(record.key_id, other_secret))
    assert (response.status_code, response.json()["error"]) == (401, "invalid_credentials")


async def test_a_disabled_key_from_outside_is_key_disabled_first(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = allow_listed(store, verifier)
    store.update(record.key_id, enabled=False)
    response = await call(make_middleware(), "192.168.1.1", basic(record.key_id, secret))
    assert (response.status_code, response.json()["error"]) == (401, "key_disabled")


async def test_a_warm_request_from_another_address_is_checked_again(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = allow_listed(store, verifier)
    app = make_middleware()
    assert (await call(app, "10.1.0.1", basic(record.key_id, secret))).status_code == 200
    outside = await call(app, "10.9.0.1", basic(record.key_id, secret))
    assert (outside.status_code, outside.json()) == (403, IP_NOT_ALLOWED)
    # The refusal did not spoil the entry for the address inside.
    assert (await call(app, "10.1.0.1", basic(record.key_id, secret))).status_code == 200
    assert verifier.verify_calls == 1


async def test_no_token_is_issued_outside_and_a_token_is_refused_outside(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = allow_listed(store, verifier)
    app = make_middleware()
    body = {"key_id": record.key_id, "key_secret": secret}
    async with client_for(app, "172.16.0.1") as client:
        refused = await client.post("/v1/auth/api-key/token", json=body)
    assert (refused.status_code, refused.json()) == (403, IP_NOT_ALLOWED)
    assert store.lookups >= 1
    async with client_for(app, "10.1.0.1") as client:
        issued = await client.post("/v1/auth/api-key/token", json=body)
    assert issued.status_code == 200
    token = issued.json()["access_token"]
    assert (await call(app, "10.1.0.2", bearer(token))).status_code == 200
    outside = await call(app, "172.16.0.1", bearer(token))
    assert (outside.status_code, outside.json()) == (403, IP_NOT_ALLOWED)


async def test_an_allow_list_added_later_applies_once_key_changed(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = store.create_key(
        verifier, name="x", owner_email="a@example.com", organization_name="Acme"
    )
    app = make_middleware()
    assert (await call(app, "192.168.1.1", basic(record.key_id, secret))).status_code == 200
    store.update(record.key_id, allowed_cidrs=("10.0.0.0/8",))
    await app.key_changed(record.key_id)
    response = await call(app, "192.168.1.1", basic(record.key_id, secret))
    assert (response.status_code, response.json()["error"]) == (403, "ip_not_allowed")


async def test_a_list_of_only_invalid_networks_lets_no_address_through(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = store.create_key(
        verifier,
        name="x",
        owner_email="a@example.com",
        organization_name="Acme",
        allowed_cidrs=["10.0.0.0/33", "office"],
    )
    response = await call(make_middleware(), "10.0.0.1", basic(record.key_id, secret))
    assert (response.status_code, response.json()["error"]) == (403, "ip_not_allowed")


async def test_a_request_without_a_client_address_is_outside_every_list(
    make_middleware: Make, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = allow_listed(store, verifier)
    app = make_middleware()
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    headers = [(k.lower().encode(), v.encode()) for k, v in basic(record.key_id, secret).items()]
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/whoami",
        "root_path": "",
        "headers": headers,
        "client": None,
        "query_string": b"",
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 403
