"""``POST /api/v1/keys/verify``: every code, the organization boundary, throttling and usage."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from tortoise.context import TortoiseContext

from support.keys import basic
from support.service_keys import SETTINGS, make_key
from wfa_auth import CALL_OUTCOMES, MemoryCounterStore, generate_key_id, generate_key_secret
from wfa_keys.api import create_api
from wfa_keys.counters import DatabaseCounterStore
from wfa_keys.models import ApiKey, KeyUsage, Organization
from wfa_keys.usage import Granularity, TortoiseCallSink, key_usage, usage_range

VERIFY = "/api/v1/keys/verify"
TOKEN = "/api/v1/auth/api-key/token"


async def serving(api: Any) -> AsyncIterator[Any]:
    """A client of ``api`` mounted under /api (the API as ``client.api``), flushed after."""
    app = Starlette(routes=[Mount("/api", app=api)])
    transport = httpx2.ASGITransport(app=app, client=("192.0.2.50", 1234))
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
        client.api = api  # type: ignore[attr-defined]
        yield client
    await api.flush_usage()


@pytest.fixture
async def http(db: TortoiseContext) -> AsyncIterator[Any]:
    async for client in serving(create_api(SETTINGS)):
        yield client


@pytest.fixture
async def verifier() -> dict[str, str]:
    key, secret = await make_key(scopes=["keys:verify"])
    return basic(key.key_id, secret)


async def verify(http: Any, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await http.post(VERIFY, headers=headers, json=body)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    answer: dict[str, Any] = response.json()
    assert set(answer) >= {"valid", "code", "key", "cache_ttl"}
    return answer


async def test_a_valid_key_is_described_without_its_hash(
    http: Any, verifier: dict[str, str]
) -> None:
    key, secret = await make_key(allowed_cidrs=["10.0.0.0/8"])
    answer = await verify(
        http, verifier, key_id=key.key_id, key_secret=secret, client_ip="10.1.2.3"
    )
    assert answer["valid"] is True
    assert answer["code"] == "VALID"
    assert 0 < answer["cache_ttl"] <= 60
    org = await Organization.get(name="Acme")
    assert answer["key"] == {
        "key_id": key.key_id,
        "name": "Acme key",
        "organization_id": str(org.id),
        "organization_name": "Acme",
        "owner_id": str(key.owner_id),
        "owner_email": "ada@acme.test",
        "scopes": ["workflows:read", "workflows:write"],
        "allowed_cidrs": ["10.0.0.0/8"],
        "expires_at": None,
    }
    assert "hash" not in str(answer)


def other_last(secret: str) -> str:
    """The secret with its last character changed (its checksum fails)."""
    return secret[:-1] + ("B" if secret.endswith("A") else "A")


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda k, s: {"key_id": k, "key_secret": other_last(s)}, id="wrong-checksum"),
        pytest.param(lambda k, s: {"key_id": k, "key_secret": generate_key_secret()}, id="wrong"),
        pytest.param(lambda k, s: {"key_id": generate_key_id(), "key_secret": s}, id="unknown-id"),
        pytest.param(lambda k, s: {"token": "not-a-token"}, id="unknown-token"),
    ],
)
async def test_unknown_or_wrong_credentials_are_one_answer(
    http: Any, verifier: dict[str, str], corrupt: Any
) -> None:
    key, secret = await make_key()
    answer = await verify(http, verifier, **corrupt(key.key_id, secret))
    assert answer == {"valid": False, "code": "INVALID_CREDENTIALS", "key": None, "cache_ttl": 0}


async def test_another_organizations_key_and_token_are_never_verified(
    http: Any, verifier: dict[str, str]
) -> None:
    other, secret = await make_key("Globex")
    answer = await verify(http, verifier, key_id=other.key_id, key_secret=secret)
    assert answer == {"valid": False, "code": "INVALID_CREDENTIALS", "key": None, "cache_ttl": 0}
    token = (await http.post(TOKEN, json={"key_id": other.key_id, "key_secret": secret})).json()
    answer = await verify(http, verifier, token=token["access_token"])
    assert answer["code"] == "INVALID_CREDENTIALS"
    assert answer["key"] is None
    # Still valid for its own organization: the refusal revoked nothing.
    response = await http.get(
        "/api/v1/whoami", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert response.status_code == 200
    await http.api.flush_usage()
    await other.refresh_from_db()
    # Its last use is the direct call above, never a verification from Acme.
    assert other.last_used_ip == "192.0.2.50"


async def test_a_token_issued_by_the_service_is_verified(
    http: Any, verifier: dict[str, str]
) -> None:
    key, secret = await make_key()
    token = (await http.post(TOKEN, json={"key_id": key.key_id, "key_secret": secret})).json()
    answer = await verify(http, verifier, token=token["access_token"], client_ip="203.0.113.9")
    assert answer["code"] == "VALID"
    assert answer["key"]["key_id"] == key.key_id
    assert 0 < answer["cache_ttl"] <= 60


async def test_disabled_expired_and_not_allowed_keys_have_their_codes(
    http: Any, verifier: dict[str, str]
) -> None:
    disabled, s1 = await make_key(enabled=False)
    expired, s2 = await make_key(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    fenced, s3 = await make_key(allowed_cidrs=["10.0.0.0/8"])
    answer = await verify(http, verifier, key_id=disabled.key_id, key_secret=s1)
    assert answer["code"] == "DISABLED"
    assert (answer["reason"], answer["cache_ttl"]) == ("key_disabled", 0)
    answer = await verify(http, verifier, key_id=expired.key_id, key_secret=s2)
    assert (answer["code"], answer["reason"]) == ("EXPIRED", "key_expired")
    answer = await verify(
        http, verifier, key_id=fenced.key_id, key_secret=s3, client_ip="192.0.2.1"
    )
    assert (answer["code"], answer["valid"]) == ("IP_NOT_ALLOWED", False)
    # Without a reported address an allow-listed key is refused too: never a pass.
    answer = await verify(http, verifier, key_id=fenced.key_id, key_secret=s3)
    assert answer["code"] == "IP_NOT_ALLOWED"


async def test_required_scopes_the_key_lacks_are_insufficient_scope(
    http: Any, verifier: dict[str, str]
) -> None:
    key, secret = await make_key(scopes=["workflows:read"])
    answer = await verify(
        http, verifier, key_id=key.key_id, key_secret=secret, required_scopes=["workflows:read"]
    )
    assert answer["code"] == "VALID"
    answer = await verify(
        http, verifier, key_id=key.key_id, key_secret=secret, required_scopes=["workflows:write"]
    )
    assert (answer["code"], answer["valid"], answer["cache_ttl"]) == (
        "INSUFFICIENT_SCOPE",
        False,
        0,
    )
    assert answer["key"]["key_id"] == key.key_id


async def test_failures_are_throttled_by_reported_address_within_the_calling_key(
    http: Any, verifier: dict[str, str]
) -> None:
    key, secret = await make_key()
    for _ in range(10):  # Throttling's default: 10 failures per key and address
        answer = await verify(
            http, verifier, key_id=key.key_id, key_secret=generate_key_secret(), client_ip="1.2.3.4"
        )
        assert answer["code"] == "INVALID_CREDENTIALS"
    answer = await verify(http, verifier, key_id=key.key_id, key_secret=secret, client_ip="1.2.3.4")
    assert answer["code"] == "THROTTLED"
    assert answer["retry_after"] > 0
    # Another address of the same caller is not locked out.
    answer = await verify(http, verifier, key_id=key.key_id, key_secret=secret, client_ip="1.2.3.5")
    assert answer["code"] == "VALID"
    # Nor is the same address reported by another verifying key.
    other, other_secret = await make_key(scopes=["keys:verify"])
    answer = await verify(
        http,
        basic(other.key_id, other_secret),
        key_id=key.key_id,
        key_secret=secret,
        client_ip="1.2.3.4",
    )
    assert answer["code"] == "VALID"


async def test_a_key_used_only_through_verification_has_its_last_use_recorded(
    http: Any, verifier: dict[str, str]
) -> None:
    key, secret = await make_key()
    await verify(http, verifier, key_id=key.key_id, key_secret=secret, client_ip="198.51.100.7")
    await http.api.flush_usage()
    await key.refresh_from_db()
    assert key.last_used_at is not None
    assert key.last_used_ip == "198.51.100.7"


async def test_a_key_without_the_verify_scope_may_not_verify(http: Any) -> None:
    caller, caller_secret = await make_key()  # the default scopes: never keys:verify
    key, secret = await make_key()
    response = await http.post(
        VERIFY,
        headers=basic(caller.key_id, caller_secret),
        json={"key_id": key.key_id, "key_secret": secret},
    )
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert response.json()["scope"] == "keys:verify"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"key_id": "x"}',
        b'{"key_id": "x", "key_secret": "y", "token": "z"}',
        b'{"token": 5}',
        b'{"token": "t", "required_scopes": "workflows:read"}',
        b'{"token": "t", "client_ip": "not an address"}',
    ],
)
async def test_a_malformed_body_is_a_400_json(
    http: Any, verifier: dict[str, str], body: bytes
) -> None:
    response = await http.post(
        VERIFY, headers={**verifier, "Content-Type": "application/json"}, content=body
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


# -- Verifications are metered as calls of the verified key (issue 21) -----------------------


@pytest.fixture
async def metered(db: TortoiseContext) -> AsyncIterator[Any]:
    """The API as ``serve`` wires it: limits in the database, calls counted in key_usage."""
    api = create_api(SETTINGS, counter_store=DatabaseCounterStore(), call_sink=TortoiseCallSink())
    async for client in serving(api):
        yield client


async def usage_of(key_id: str) -> dict[str, int]:
    """The key's counts by outcome this hour, as ``ApiKey.usage`` reads them (non-zero)."""
    org = await Organization.get(name="Acme")
    starts = usage_range(datetime.now(UTC) - timedelta(hours=1), None, Granularity.HOUR)
    buckets = await key_usage(str(org.id), key_id, starts, Granularity.HOUR)
    totals = [sum(bucket.counts[i] for bucket in buckets) for i in range(len(CALL_OUTCOMES))]
    return {outcome: n for outcome, n in zip(CALL_OUTCOMES, totals, strict=True) if n}


async def test_each_verification_is_counted_in_the_verified_keys_usage_by_outcome(
    metered: Any, verifier: dict[str, str]
) -> None:
    key, secret = await make_key(scopes=["workflows:read"])
    disabled, s1 = await make_key(enabled=False)
    expired, s2 = await make_key(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    fenced, s3 = await make_key(allowed_cidrs=["10.0.0.0/8"])
    other, s4 = await make_key("Globex")
    checks: list[tuple[dict[str, Any], str]] = [
        ({"key_id": key.key_id, "key_secret": secret}, "VALID"),
        ({"key_id": key.key_id, "key_secret": secret}, "VALID"),  # warm in the service
        (
            {"key_id": key.key_id, "key_secret": secret, "required_scopes": ["workflows:write"]},
            "INSUFFICIENT_SCOPE",
        ),
        ({"key_id": key.key_id, "key_secret": generate_key_secret()}, "INVALID_CREDENTIALS"),
        ({"key_id": disabled.key_id, "key_secret": s1}, "DISABLED"),
        ({"key_id": expired.key_id, "key_secret": s2}, "EXPIRED"),
        ({"key_id": fenced.key_id, "key_secret": s3, "client_ip": "192.0.2.1"}, "IP_NOT_ALLOWED"),
        # Another organization's key: nobody's business here, counted for nobody.
        ({"key_id": other.key_id, "key_secret": s4}, "INVALID_CREDENTIALS"),
        ({"key_id": other.key_id, "key_secret": generate_key_secret()}, "INVALID_CREDENTIALS"),
    ]
    for body, code in checks:
        assert (await verify(metered, verifier, **body))["code"] == code

    await metered.api.flush_usage()

    assert await usage_of(key.key_id) == {
        "success": 2,
        "insufficient_scope": 1,
        "invalid_secret": 1,
    }
    assert await usage_of(disabled.key_id) == {"disabled": 1}
    assert await usage_of(expired.key_id) == {"expired": 1}
    assert await usage_of(fenced.key_id) == {"ip_not_allowed": 1}
    assert await KeyUsage.filter(key_id=other.key_id).count() == 0
    # The verifying key's own calls are its own: each verification, answered 200.
    verifier_id = basic_key_id(verifier)
    assert await usage_of(verifier_id) == {"success": len(checks)}


def basic_key_id(headers: dict[str, str]) -> str:
    encoded = headers["Authorization"].removeprefix("Basic ")
    return base64.b64decode(encoded).decode().split(":")[0]


async def test_a_limited_key_is_limited_at_verification_and_never_cached(
    metered: Any, verifier: dict[str, str]
) -> None:
    rated, s1 = await make_key()
    await ApiKey.filter(key_id=rated.key_id).update(
        rate_limit_requests=2, rate_limit_per_seconds=3600
    )
    quota, s2 = await make_key()
    await ApiKey.filter(key_id=quota.key_id).update(quota_requests=1, quota_period="day")

    answers = [
        await verify(metered, verifier, key_id=rated.key_id, key_secret=s1) for _ in range(3)
    ]
    first, second = [
        await verify(metered, verifier, key_id=quota.key_id, key_secret=s2) for _ in range(2)
    ]

    # Every call of a limited key must come back to be counted: nothing may be cached.
    assert [(a["code"], a["cache_ttl"]) for a in answers[:2]] == [("VALID", 0), ("VALID", 0)]
    assert (answers[2]["code"], answers[2]["reason"], answers[2]["key"]) == (
        "THROTTLED",
        "rate_limited",
        None,
    )
    assert 0 < answers[2]["retry_after"] <= 3960  # the window and at most one slot (a tenth)
    assert (first["code"], first["cache_ttl"]) == ("VALID", 0)
    assert (second["code"], second["reason"]) == ("THROTTLED", "quota_exceeded")
    assert second["retry_after"] > 0
    await metered.api.flush_usage()
    assert await usage_of(rated.key_id) == {"success": 2, "rate_limited": 1}
    assert await usage_of(quota.key_id) == {"success": 1, "quota_exceeded": 1}
    # The verifying key's own rate limit is its own: none here, every verification answered.
    direct = await metered.get("/api/v1/whoami", headers=basic(rated.key_id, s1))
    assert (direct.status_code, direct.json()["error"]) == (429, "rate_limited")


class FailingCounters(MemoryCounterStore):
    """A counter store that is down."""

    async def take(self, bucket: str, slot: int, amount: int, *, limit: int, span: int) -> Any:
        raise ConnectionError("down")


async def test_a_limited_key_is_no_verdict_while_the_counter_store_is_down(
    db: TortoiseContext, verifier: dict[str, str]
) -> None:
    rated, secret = await make_key()
    await ApiKey.filter(key_id=rated.key_id).update(
        rate_limit_requests=5, rate_limit_per_seconds=60
    )
    plain, plain_secret = await make_key()
    async for client in serving(create_api(SETTINGS, counter_store=FailingCounters())):
        response = await client.post(
            VERIFY, headers=verifier, json={"key_id": rated.key_id, "key_secret": secret}
        )
        answer = await verify(client, verifier, key_id=plain.key_id, key_secret=plain_secret)
    # Never a pass for a limited key: a 503 a remote app answers as "cannot verify".
    assert (response.status_code, response.json()["error"]) == (503, "service_unavailable")
    assert response.headers["retry-after"]
    assert answer["code"] == "VALID"
