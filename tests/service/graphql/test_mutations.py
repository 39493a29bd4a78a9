"""Creating, disabling, enabling, regenerating and deleting API keys."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from support.gql import Api, KeyChanges, errors_of, only_error_code
from wfa_auth import Argon2Verifier
from wfa_keys.models import ApiKey, AuditAction, AuditEvent

SET_ENABLED = """
mutation Set($id: ID!, $enabled: Boolean!) {
  setApiKeyEnabled(id: $id, enabled: $enabled) { id name enabled status expiresAt }
}
"""
REGENERATE = """
mutation Regenerate($id: ID!) {
  regenerateApiKey(id: $id) {
    keySecret
    apiKey { id name enabled status expiresAt secretRegeneratedAt owner { email } }
  }
}
"""
DELETE = "mutation Delete($id: ID!) { deleteApiKey(id: $id) { id } }"
LIST = "{ apiKeys { nodes { id name enabled status createdAt expiresAt owner { id email } } } }"
CREATE_RAW = """
mutation Create($input: CreateApiKeyInput!) {
  createApiKey(input: $input) { keySecret apiKey { id name expiresAt } }
}
"""

NOWHERE = "wfak_" + "0" * 20


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def actions() -> list[AuditAction]:
    """The audit actions recorded so far, oldest first, sign-ins left out."""
    events = await AuditEvent.all().order_by("id")
    return [event.action for event in events if event.action.startswith("key_")]


# ---------------------------------------------------------------- createApiKey


async def test_created_key_secret_is_returned_once_and_only_its_hash_is_stored(
    admin: Api,
) -> None:
    created = await admin.create_key("CI deploy")
    secret = created["keySecret"]
    key_id = created["apiKey"]["id"]

    row = await ApiKey.get(key_id=key_id)
    assert row.secret_hash != secret
    assert secret not in str(await ApiKey.filter(key_id=key_id).values())
    assert Argon2Verifier().verify(row.secret_hash, secret)
    # No later answer shows the secret or its hash again.
    listing = await admin.post(LIST)
    single = await admin.post("query($id: ID!) { apiKey(id: $id) { id name } }", id=key_id)
    for response in (listing, single):
        assert secret not in response.text
        assert row.secret_hash not in response.text
    events = await AuditEvent.all().values()
    assert secret not in str(events)
    assert row.secret_hash not in str(events)


async def test_created_key_is_enabled_active_and_owned_by_the_caller(admin: Api) -> None:
    created = await admin.create_key("  CI deploy  ")

    key = created["apiKey"]
    assert key["id"].startswith("wfak_")
    assert created["keySecret"].startswith("wfas_")
    assert key["name"] == "CI deploy"
    assert key["enabled"] is True
    assert key["status"] == "ACTIVE"
    assert key["expiresAt"] is None
    assert key["lastUsedAt"] is None
    assert key["secretRegeneratedAt"] is None
    assert key["owner"]["email"] == "admin@acme.example"
    row = await ApiKey.get(key_id=key["id"]).prefetch_related("owner", "organization")
    assert row.owner.email == "admin@acme.example"
    assert row.organization.name == "Acme"


async def test_create_records_one_audit_event_with_actor_key_and_address(admin: Api) -> None:
    created = await admin.create_key()

    events = await AuditEvent.filter(action=AuditAction.KEY_CREATED)
    assert len(events) == 1
    assert events[0].key_id == created["apiKey"]["id"]
    assert events[0].actor_email == "admin@acme.example"
    assert events[0].client_ip == "127.0.0.1"


@pytest.mark.parametrize("days", [1, 30, 3650])
async def test_lifetime_days_sets_expiry_that_many_days_after_creation(
    admin: Api, days: int
) -> None:
    key = (await admin.create_key(days=days))["apiKey"]

    assert parse_time(key["expiresAt"]) - parse_time(key["createdAt"]) == timedelta(days=days)
    assert key["status"] == "ACTIVE"


async def test_create_response_is_not_cached(admin: Api) -> None:
    response = await admin.post(mutations_create(), name="x")
    assert response.headers["cache-control"] == "no-store"


def mutations_create() -> str:
    return "mutation($name: String!) { createApiKey(input: {name: $name}) { keySecret } }"


def empty(_: str) -> str:
    return ""


def blank(_: str) -> str:
    return " \t "


def too_long(_: str) -> str:
    return "x" * 101


def with_control_character(value: str) -> str:
    return value + "\x00"


@pytest.mark.parametrize("corrupt", [empty, blank, too_long, with_control_character])
async def test_bad_name_is_refused_and_nothing_is_stored(
    admin: Api, corrupt: Callable[[str], str]
) -> None:
    body = await admin(CREATE_RAW, input={"name": corrupt("CI deploy")})

    assert errors_of(body) == [("BAD_USER_INPUT", "input.name")]
    assert body["data"] is None
    assert await ApiKey.all().count() == 0
    assert await actions() == []


async def test_name_of_exactly_100_characters_is_accepted(admin: Api) -> None:
    assert (await admin.create_key("n" * 100))["apiKey"]["name"] == "n" * 100


@pytest.mark.parametrize("days", [0, -1, 3651, 2**31 - 1, -(2**31)])
async def test_lifetime_out_of_range_is_refused_and_nothing_is_stored(
    admin: Api, days: int
) -> None:
    body = await admin(CREATE_RAW, input={"name": "CI", "lifetimeDays": days})

    assert errors_of(body) == [("BAD_USER_INPUT", "input.lifetimeDays")]
    assert await ApiKey.all().count() == 0
    assert await actions() == []


async def test_lifetime_beyond_graphql_int_is_refused_before_the_resolver(admin: Api) -> None:
    body = await admin(CREATE_RAW, input={"name": "CI", "lifetimeDays": 2**31})

    assert only_error_code(body) == "GRAPHQL_VALIDATION_FAILED"
    assert await ApiKey.all().count() == 0


async def test_failure_inside_the_transaction_leaves_no_key_and_no_event(
    admin: Api, break_audit: Callable[[], None]
) -> None:

    break_audit()
    body = await admin(CREATE_RAW, input={"name": "CI"})

    assert only_error_code(body) == "INTERNAL_SERVER_ERROR"
    assert await ApiKey.all().count() == 0
    assert await actions() == []


# ------------------------------------------------------------- setApiKeyEnabled


async def test_disable_then_enable_records_one_event_each_and_notifies_after_commit(
    admin: Api, key_changes: KeyChanges
) -> None:
    key_id = (await admin.create_key())["apiKey"]["id"]

    disabled = await admin(SET_ENABLED, id=key_id, enabled=False)
    assert disabled["data"]["setApiKeyEnabled"]["enabled"] is False
    assert disabled["data"]["setApiKeyEnabled"]["status"] == "DISABLED"
    assert (await ApiKey.get(key_id=key_id)).enabled is False

    enabled = await admin(SET_ENABLED, id=key_id, enabled=True)
    assert enabled["data"]["setApiKeyEnabled"]["status"] == "ACTIVE"
    assert (await ApiKey.get(key_id=key_id)).enabled is True

    assert await actions() == [
        AuditAction.KEY_CREATED,
        AuditAction.KEY_DISABLED,
        AuditAction.KEY_ENABLED,
    ]
    assert key_changes.key_ids == [key_id, key_id]
    assert key_changes.inside_transaction == [False, False]


async def test_setting_the_state_a_key_already_has_records_no_event(admin: Api) -> None:
    key_id = (await admin.create_key())["apiKey"]["id"]

    body = await admin(SET_ENABLED, id=key_id, enabled=True)

    assert body["data"]["setApiKeyEnabled"]["enabled"] is True
    assert await actions() == [AuditAction.KEY_CREATED]


async def test_expired_key_shows_expired_even_when_disabled(admin: Api) -> None:
    key_id = (await admin.create_key(days=1))["apiKey"]["id"]
    await ApiKey.filter(key_id=key_id).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))

    listed = await admin(LIST)
    assert listed["data"]["apiKeys"]["nodes"][0]["status"] == "EXPIRED"
    disabled = await admin(SET_ENABLED, id=key_id, enabled=False)
    assert disabled["data"]["setApiKeyEnabled"]["status"] == "EXPIRED"
    assert disabled["data"]["setApiKeyEnabled"]["enabled"] is False


# ------------------------------------------------------------- regenerateApiKey


async def test_regenerate_replaces_the_secret_and_keeps_everything_else(
    admin: Api, key_changes: KeyChanges
) -> None:
    created = await admin.create_key("CI", days=30)
    key_id = created["apiKey"]["id"]
    await admin(SET_ENABLED, id=key_id, enabled=False)

    body = await admin(REGENERATE, id=key_id)

    regenerated = body["data"]["regenerateApiKey"]
    new_secret = regenerated["keySecret"]
    assert new_secret != created["keySecret"]
    assert regenerated["apiKey"]["id"] == key_id
    assert regenerated["apiKey"]["name"] == "CI"
    assert regenerated["apiKey"]["enabled"] is False
    assert regenerated["apiKey"]["expiresAt"] == created["apiKey"]["expiresAt"]
    assert regenerated["apiKey"]["secretRegeneratedAt"] is not None
    row = await ApiKey.get(key_id=key_id)
    verifier = Argon2Verifier()
    assert verifier.verify(row.secret_hash, new_secret)
    assert not verifier.verify(row.secret_hash, created["keySecret"])
    assert await actions() == [
        AuditAction.KEY_CREATED,
        AuditAction.KEY_DISABLED,
        AuditAction.KEY_REGENERATED,
    ]
    assert key_changes.key_ids[-1] == key_id
    assert key_changes.inside_transaction[-1] is False


async def test_regenerate_response_is_not_cached(admin: Api) -> None:
    key_id = (await admin.create_key())["apiKey"]["id"]
    response = await admin.post(REGENERATE, id=key_id)
    assert response.headers["cache-control"] == "no-store"


async def test_failed_regenerate_keeps_the_old_secret(
    admin: Api, break_audit: Callable[[], None]
) -> None:
    created = await admin.create_key()
    old_hash = (await ApiKey.get(key_id=created["apiKey"]["id"])).secret_hash

    break_audit()
    body = await admin(REGENERATE, id=created["apiKey"]["id"])

    assert only_error_code(body) == "INTERNAL_SERVER_ERROR"
    row = await ApiKey.get(key_id=created["apiKey"]["id"])
    assert row.secret_hash == old_hash
    assert row.secret_regenerated_at is None


# ---------------------------------------------------------------- deleteApiKey


async def test_delete_removes_the_key_for_good(admin: Api, key_changes: KeyChanges) -> None:
    key_id = (await admin.create_key())["apiKey"]["id"]

    body = await admin(DELETE, id=key_id)

    assert body == {"data": {"deleteApiKey": {"id": key_id}}}
    assert await ApiKey.filter(key_id=key_id).count() == 0
    assert await actions() == [AuditAction.KEY_CREATED, AuditAction.KEY_DELETED]
    assert key_changes.key_ids == [key_id]
    assert key_changes.inside_transaction == [False]
    again = await admin(DELETE, id=key_id)
    assert only_error_code(again) == "NOT_FOUND"
    assert await actions() == [AuditAction.KEY_CREATED, AuditAction.KEY_DELETED]


async def test_failed_delete_keeps_the_key(admin: Api, break_audit: Callable[[], None]) -> None:
    key_id = (await admin.create_key())["apiKey"]["id"]

    break_audit()
    body = await admin(DELETE, id=key_id)

    assert only_error_code(body) == "INTERNAL_SERVER_ERROR"
    assert await ApiKey.filter(key_id=key_id).count() == 1


# ------------------------------------------------------- missing and malformed IDs


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (SET_ENABLED, {"enabled": False}),
        (REGENERATE, {}),
        (DELETE, {}),
    ],
)
async def test_unknown_key_is_not_found_and_nothing_is_recorded(
    admin: Api, key_changes: KeyChanges, query: str, variables: dict[str, Any]
) -> None:
    body = await admin(query, id=NOWHERE, **variables)

    assert only_error_code(body) == "NOT_FOUND"
    assert await actions() == []
    assert key_changes.key_ids == []


def truncated(key_id: str) -> str:
    return key_id[:-1]


def wrong_prefix(key_id: str) -> str:
    return "wfas_" + key_id[5:]


def with_symbol(key_id: str) -> str:
    return key_id[:-1] + "%"


def sql_like(_: str) -> str:
    return "' OR 1=1 --"


@pytest.mark.parametrize("corrupt", [truncated, wrong_prefix, with_symbol, sql_like, empty])
@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (SET_ENABLED, {"enabled": False}),
        (REGENERATE, {}),
        (DELETE, {}),
        ("query($id: ID!) { apiKey(id: $id) { id } }", {}),
    ],
)
async def test_malformed_key_id_is_bad_user_input_and_changes_nothing(
    admin: Api, corrupt: Callable[[str], str], query: str, variables: dict[str, Any]
) -> None:
    key_id = (await admin.create_key())["apiKey"]["id"]
    before = await ApiKey.get(key_id=key_id)

    body = await admin(query, id=corrupt(key_id), **variables)

    assert errors_of(body) == [("BAD_USER_INPUT", "id")]
    after = await ApiKey.get(key_id=key_id)
    assert (after.enabled, after.secret_hash) == (before.enabled, before.secret_hash)
    assert await actions() == [AuditAction.KEY_CREATED]
