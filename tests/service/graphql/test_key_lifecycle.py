"""Issue 10 through GraphQL: scopes, allow-lists, updates, grace periods, filters, settings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from support.gql import Api, KeyChanges, errors_of, only_error_code
from wfa_auth import secret_fingerprint
from wfa_keys.models import AccessToken, ApiKey, AuditAction, AuditEvent, KeyChange, Organization

KEY_FIELDS = "id name scopes allowedCidrs previousSecretExpiresAt lastUsedIp lastUsedAt status"
CREATE = f"""
mutation Create($input: CreateApiKeyInput!) {{
  createApiKey(input: $input) {{ keySecret apiKey {{ {KEY_FIELDS} }} }}
}}
"""
UPDATE = f"""
mutation Update($id: ID!, $input: UpdateApiKeyInput!) {{
  updateApiKey(id: $id, input: $input) {{ {KEY_FIELDS} }}
}}
"""
REGENERATE = f"""
mutation Regenerate($id: ID!, $minutes: Int!) {{
  regenerateApiKey(id: $id, gracePeriodMinutes: $minutes) {{ keySecret apiKey {{ {KEY_FIELDS} }} }}
}}
"""
REGENERATE_DEFAULT = "mutation R($id: ID!) { regenerateApiKey(id: $id) { keySecret } }"
REVOKE = f"mutation Revoke($id: ID!) {{ revokePreviousSecret(id: $id) {{ {KEY_FIELDS} }} }}"
SET_ENABLED = (
    "mutation S($id: ID!, $on: Boolean!) { setApiKeyEnabled(id: $id, enabled: $on) "
    "{ id previousSecretExpiresAt } }"
)
SETTINGS = """
mutation Settings($input: OrganizationSettingsInput!) {
  setOrganizationSettings(input: $input) { name keyInactivityDays }
}
"""
LIST = """
query List($status: ApiKeyStatus, $within: Int, $search: String, $first: Int, $after: String) {
  apiKeys(status: $status, expiringWithinDays: $within, search: $search, first: $first,
          after: $after) {
    nodes { id name status scopes allowedCidrs previousSecretExpiresAt lastUsedIp }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}
"""
ALL_SCOPES = ["workflows:read", "workflows:write", "keys:verify"]
#: What a key gets without a list: never keys:verify (a verifying service is deliberate).
DEFAULT_SCOPES = ["workflows:read", "workflows:write"]


async def create(api: Api, **input: Any) -> dict[str, Any]:
    body = await api(CREATE, input={"name": "CI", **input})
    assert "errors" not in body, body
    created: dict[str, Any] = body["data"]["createApiKey"]
    return created


async def key_events() -> list[tuple[AuditAction, dict[str, Any] | None]]:
    """The audit events of keys so far (sign-ins left out), oldest first, with their details."""
    events = await AuditEvent.all().order_by("id")
    return [
        (event.action, event.detail)
        for event in events
        if not event.action.startswith(("login", "logout"))
    ]


async def snapshot() -> tuple[list[dict[str, Any]], int, int, int]:
    """Every key as stored, and how many audit events, announcements and tokens exist."""
    rows = await ApiKey.all().order_by("id").values()
    return (
        rows,
        await AuditEvent.all().count(),
        await KeyChange.all().count(),
        await AccessToken.all().count(),
    )


async def token_for(key_id: str, secret_hash: str, name: str) -> None:
    await AccessToken.create(
        token_hash=name * 64,
        key_id=key_id,
        secret_fingerprint=secret_fingerprint(secret_hash),
        expires_at=datetime.now(UTC) + timedelta(minutes=15),
    )


async def token_hashes(key_id: str) -> list[str]:
    hashes: list[str] = await AccessToken.filter(key_id=key_id).values_list("token_hash", flat=True)  # type: ignore[assignment]  # flat=True gives the values, not tuples
    return hashes


# ------------------------------------------------------------- apiScopes, create


async def test_api_scopes_lists_every_known_scope_with_its_description(admin: Api) -> None:
    body = await admin("{ apiScopes { name description grantedByDefault } }")

    scopes = body["data"]["apiScopes"]
    assert [scope["name"] for scope in scopes] == ALL_SCOPES
    assert all(scope["description"] for scope in scopes)
    assert [s["name"] for s in scopes if s["grantedByDefault"]] == DEFAULT_SCOPES


async def test_a_key_created_without_scopes_gets_the_default_scopes_and_no_allow_list(
    admin: Api,
) -> None:
    key = (await create(admin))["apiKey"]

    assert key["scopes"] == DEFAULT_SCOPES
    assert key["allowedCidrs"] == []
    assert key["previousSecretExpiresAt"] is None
    assert key["lastUsedIp"] is None
    row = await ApiKey.get(key_id=key["id"])
    assert (row.scopes, row.allowed_cidrs) == (DEFAULT_SCOPES, [])


async def test_a_key_is_created_with_the_scopes_and_networks_given_in_canonical_form(
    admin: Api,
) -> None:
    key = (
        await create(
            admin,
            scopes=["workflows:read", "workflows:read"],
            allowedCidrs=[" 203.0.113.0/24", "2001:DB8::/32", "198.51.100.7"],
        )
    )["apiKey"]

    assert key["scopes"] == ["workflows:read"]
    assert key["allowedCidrs"] == ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7/32"]


async def test_a_key_may_be_created_with_no_scope(admin: Api) -> None:
    assert (await create(admin, scopes=[]))["apiKey"]["scopes"] == []


@pytest.mark.parametrize(
    ("input", "field"),
    [
        ({"scopes": ["workflows:delete"]}, "scopes"),
        ({"scopes": ["workflows:read", ""]}, "scopes"),
        ({"allowedCidrs": ["10.0.0.1/8"]}, "input.allowedCidrs"),
        ({"allowedCidrs": ["not a network"]}, "input.allowedCidrs"),
        ({"allowedCidrs": [f"10.0.{n}.0/24" for n in range(21)]}, "input.allowedCidrs"),
    ],
)
async def test_bad_scopes_or_networks_on_create_are_bad_user_input_and_create_nothing(
    admin: Api, input: dict[str, Any], field: str
) -> None:
    before = await snapshot()

    body = await admin(CREATE, input={"name": "CI", **input})

    assert errors_of(body) == [("BAD_USER_INPUT", field)]
    assert await snapshot() == before


# ------------------------------------------------------------------- updateApiKey


async def test_update_changes_only_the_fields_given_and_records_which(
    admin: Api, key_changes: KeyChanges
) -> None:
    key_id = (await create(admin))["apiKey"]["id"]
    await KeyChange.all().delete()

    body = await admin(
        UPDATE, id=key_id, input={"scopes": ["workflows:read"], "allowedCidrs": ["10.0.0.0/8"]}
    )

    assert "errors" not in body, body
    updated = body["data"]["updateApiKey"]
    assert (updated["name"], updated["scopes"], updated["allowedCidrs"]) == (
        "CI",
        ["workflows:read"],
        ["10.0.0.0/8"],
    )
    row = await ApiKey.get(key_id=key_id)
    assert (row.name, row.scopes, row.allowed_cidrs) == ("CI", ["workflows:read"], ["10.0.0.0/8"])
    assert (await key_events())[-1] == (
        AuditAction.KEY_UPDATED,
        {"changed": ["scopes", "allowedCidrs"]},
    )
    event = await AuditEvent.get(action=AuditAction.KEY_UPDATED)
    assert (event.key_id, event.actor_email) == (key_id, "admin@acme.example")
    # Announced to every process in the transaction, and to this one after the commit.
    assert await KeyChange.all().values_list("key_id", flat=True) == [key_id]
    assert key_changes.key_ids[-1] == key_id
    assert key_changes.inside_transaction[-1] is False


async def test_update_with_empty_lists_grants_no_scope_and_allows_every_address(
    admin: Api,
) -> None:
    key_id = (await create(admin, allowedCidrs=["10.0.0.0/8"]))["apiKey"]["id"]

    body = await admin(
        UPDATE, id=key_id, input={"name": " Renamed ", "scopes": [], "allowedCidrs": []}
    )

    updated = body["data"]["updateApiKey"]
    assert (updated["name"], updated["scopes"], updated["allowedCidrs"]) == ("Renamed", [], [])
    assert (await key_events())[-1] == (
        AuditAction.KEY_UPDATED,
        {"changed": ["name", "scopes", "allowedCidrs"]},
    )


async def test_an_update_that_changes_nothing_records_and_announces_nothing(
    admin: Api, key_changes: KeyChanges
) -> None:
    key_id = (await create(admin, scopes=["workflows:read"]))["apiKey"]["id"]
    calls = len(key_changes.key_ids)
    before = await snapshot()

    same = await admin(UPDATE, id=key_id, input={"name": "CI", "scopes": ["workflows:read"]})
    nothing = await admin(UPDATE, id=key_id, input={})

    assert same["data"]["updateApiKey"]["name"] == "CI"
    assert nothing["data"]["updateApiKey"]["scopes"] == ["workflows:read"]
    assert await snapshot() == before
    assert len(key_changes.key_ids) == calls


@pytest.mark.parametrize(
    ("input", "field"),
    [
        ({"name": ""}, "input.name"),
        ({"name": "x" * 101}, "input.name"),
        ({"name": "ok", "scopes": ["admin"]}, "input.scopes"),
        ({"name": "ok", "allowedCidrs": ["10.0.0.0/33"]}, "input.allowedCidrs"),
        # The valid name is not written either: all or nothing.
        (
            {"name": "ok", "scopes": ["workflows:read"], "allowedCidrs": ["::1/200"]},
            "input.allowedCidrs",
        ),
    ],
)
async def test_a_bad_update_is_bad_user_input_and_changes_nothing(
    admin: Api, input: dict[str, Any], field: str
) -> None:
    key_id = (await create(admin))["apiKey"]["id"]
    before = await snapshot()

    body = await admin(UPDATE, id=key_id, input=input)

    assert errors_of(body) == [("BAD_USER_INPUT", field)]
    assert await snapshot() == before


async def test_a_failed_update_changes_nothing_and_records_no_event(
    admin: Api, break_audit: Callable[[], None]
) -> None:
    key_id = (await create(admin))["apiKey"]["id"]
    before = await snapshot()
    break_audit()

    body = await admin(UPDATE, id=key_id, input={"name": "new", "scopes": []})

    assert only_error_code(body) == "INTERNAL_SERVER_ERROR"
    assert await snapshot() == before


# ------------------------------------------------- regenerate with a grace period


async def test_regenerate_with_a_grace_period_keeps_the_old_secret_and_its_tokens(
    admin: Api,
) -> None:
    key_id = (await create(admin))["apiKey"]["id"]
    old_hash = (await ApiKey.get(key_id=key_id)).secret_hash
    await token_for(key_id, old_hash, "a")
    started = datetime.now(UTC)

    body = await admin(REGENERATE, id=key_id, minutes=60)

    assert "errors" not in body, body
    expires = datetime.fromisoformat(
        body["data"]["regenerateApiKey"]["apiKey"]["previousSecretExpiresAt"]
    )
    assert started + timedelta(minutes=60) <= expires <= datetime.now(UTC) + timedelta(minutes=60)
    row = await ApiKey.get(key_id=key_id)
    assert row.previous_secret_hash == old_hash
    assert row.secret_hash != old_hash
    assert await AccessToken.filter(key_id=key_id).count() == 1
    assert (await key_events())[-1] == (AuditAction.KEY_REGENERATED, {"gracePeriodMinutes": 60})
    listed = (await admin(LIST))["data"]["apiKeys"]["nodes"][0]
    assert listed["previousSecretExpiresAt"] is not None


async def test_a_second_regenerate_keeps_only_the_secret_it_replaced(admin: Api) -> None:
    key_id = (await create(admin))["apiKey"]["id"]
    first_hash = (await ApiKey.get(key_id=key_id)).secret_hash
    await token_for(key_id, first_hash, "a")
    await admin(REGENERATE, id=key_id, minutes=60)
    second_hash = (await ApiKey.get(key_id=key_id)).secret_hash
    await token_for(key_id, second_hash, "b")

    await admin(REGENERATE, id=key_id, minutes=5)

    row = await ApiKey.get(key_id=key_id)
    assert row.previous_secret_hash == second_hash
    # The first secret's token can never work again: it is gone.
    assert await token_hashes(key_id) == ["b" * 64]


async def test_regenerate_without_a_grace_period_ends_one_and_deletes_every_token(
    admin: Api,
) -> None:
    key_id = (await create(admin))["apiKey"]["id"]
    await admin(REGENERATE, id=key_id, minutes=60)
    await token_for(key_id, (await ApiKey.get(key_id=key_id)).secret_hash, "a")

    body = await admin(REGENERATE_DEFAULT, id=key_id)

    assert "errors" not in body, body
    row = await ApiKey.get(key_id=key_id)
    assert (row.previous_secret_hash, row.previous_secret_expires_at) == (None, None)
    assert await AccessToken.filter(key_id=key_id).count() == 0
    assert (await key_events())[-1] == (AuditAction.KEY_REGENERATED, {"gracePeriodMinutes": 0})


@pytest.mark.parametrize("minutes", [-1, 10081, 2**31 - 1])
async def test_a_grace_period_out_of_range_is_bad_user_input_and_changes_nothing(
    admin: Api, minutes: int
) -> None:
    key_id = (await create(admin))["apiKey"]["id"]
    before = await snapshot()

    body = await admin(REGENERATE, id=key_id, minutes=minutes)

    assert errors_of(body) == [("BAD_USER_INPUT", "gracePeriodMinutes")]
    assert await snapshot() == before


async def test_the_longest_grace_period_is_accepted(admin: Api) -> None:
    key_id = (await create(admin))["apiKey"]["id"]
    body = await admin(REGENERATE, id=key_id, minutes=10080)
    assert body["data"]["regenerateApiKey"]["apiKey"]["previousSecretExpiresAt"] is not None


async def test_a_past_grace_period_shows_as_null(admin: Api) -> None:
    key_id = (await create(admin))["apiKey"]["id"]
    await admin(REGENERATE, id=key_id, minutes=60)
    await ApiKey.filter(key_id=key_id).update(
        previous_secret_expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )

    one = await admin(f'{{ apiKey(id: "{key_id}") {{ previousSecretExpiresAt }} }}')
    listed = await admin(LIST)

    assert one["data"]["apiKey"]["previousSecretExpiresAt"] is None
    assert listed["data"]["apiKeys"]["nodes"][0]["previousSecretExpiresAt"] is None


# ----------------------------------------------------------- revokePreviousSecret


async def test_revoking_the_previous_secret_ends_the_grace_period_and_its_tokens(
    admin: Api, key_changes: KeyChanges
) -> None:
    key_id = (await create(admin))["apiKey"]["id"]
    old_hash = (await ApiKey.get(key_id=key_id)).secret_hash
    await token_for(key_id, old_hash, "a")
    await admin(REGENERATE, id=key_id, minutes=60)
    await token_for(key_id, (await ApiKey.get(key_id=key_id)).secret_hash, "b")
    await KeyChange.all().delete()

    body = await admin(REVOKE, id=key_id)

    assert "errors" not in body, body
    assert body["data"]["revokePreviousSecret"]["previousSecretExpiresAt"] is None
    row = await ApiKey.get(key_id=key_id)
    assert (row.previous_secret_hash, row.previous_secret_expires_at) == (None, None)
    # The current secret's token stays.
    assert await token_hashes(key_id) == ["b" * 64]
    assert (await key_events())[-1] == (AuditAction.PREVIOUS_SECRET_REVOKED, None)
    assert await KeyChange.all().values_list("key_id", flat=True) == [key_id]
    assert key_changes.key_ids[-1] == key_id


async def test_revoking_without_a_valid_previous_secret_changes_and_records_nothing(
    admin: Api,
) -> None:
    key_id = (await create(admin))["apiKey"]["id"]
    before = await snapshot()

    body = await admin(REVOKE, id=key_id)

    assert body["data"]["revokePreviousSecret"]["id"] == key_id
    assert await snapshot() == before


async def test_a_failed_revoke_changes_nothing(admin: Api, break_audit: Callable[[], None]) -> None:
    key_id = (await create(admin))["apiKey"]["id"]
    await admin(REGENERATE, id=key_id, minutes=60)
    before = await snapshot()
    break_audit()

    body = await admin(REVOKE, id=key_id)

    assert only_error_code(body) == "INTERNAL_SERVER_ERROR"
    assert await snapshot() == before


async def test_disabling_a_key_ends_its_grace_period(admin: Api) -> None:
    key_id = (await create(admin))["apiKey"]["id"]
    await admin(REGENERATE, id=key_id, minutes=60)

    disabled = await admin(SET_ENABLED, id=key_id, on=False)
    enabled = await admin(SET_ENABLED, id=key_id, on=True)

    assert disabled["data"]["setApiKeyEnabled"]["previousSecretExpiresAt"] is None
    assert enabled["data"]["setApiKeyEnabled"]["previousSecretExpiresAt"] is None
    row = await ApiKey.get(key_id=key_id)
    assert (row.previous_secret_hash, row.previous_secret_expires_at) == (None, None)


@pytest.mark.parametrize(
    "operation",
    [
        'mutation { updateApiKey(id: "KEY", input: {name: "x"}) { id } }',
        'mutation { regenerateApiKey(id: "KEY", gracePeriodMinutes: 5) { keySecret } }',
        'mutation { revokePreviousSecret(id: "KEY") { id } }',
    ],
)
async def test_another_organizations_key_is_not_found_for_the_new_mutations(
    admin: Api, other_admin: Api, operation: str
) -> None:
    key_id = (await create(admin))["apiKey"]["id"]
    await admin(REGENERATE, id=key_id, minutes=60)
    before = await snapshot()

    body = await other_admin(operation.replace("KEY", key_id))

    assert only_error_code(body) == "NOT_FOUND"
    assert await snapshot() == before


@pytest.mark.parametrize(
    "operation",
    [
        'mutation { updateApiKey(id: "nope", input: {name: "x"}) { id } }',
        'mutation { revokePreviousSecret(id: "nope") { id } }',
    ],
)
async def test_a_malformed_key_id_is_bad_user_input_on_id(admin: Api, operation: str) -> None:
    assert errors_of(await admin(operation)) == [("BAD_USER_INPUT", "id")]


# ------------------------------------------------------------ apiKeys filters


async def _keys_of_every_status(admin: Api) -> dict[str, str]:
    """Key IDs by name: active (expiring in 5 and 20 days, or never), disabled, expired."""
    now = datetime.now(UTC)
    ids = {}
    for name, days in [
        ("soon", 5),
        ("later", 20),
        ("never", None),
        ("off", 3),
        ("expired", 1),
        ("expired off", 1),
    ]:
        ids[name] = (await create(admin, name=name, lifetimeDays=days))["apiKey"]["id"]
    for name in ("off", "expired off"):
        await admin(SET_ENABLED, id=ids[name], on=False)
    for name in ("expired", "expired off"):
        await ApiKey.filter(key_id=ids[name]).update(expires_at=now - timedelta(minutes=1))
    return ids


@pytest.mark.parametrize(
    ("variables", "names"),
    [
        ({"status": "ACTIVE"}, ["never", "later", "soon"]),
        ({"status": "DISABLED"}, ["off"]),
        ({"status": "EXPIRED"}, ["expired off", "expired"]),
        ({"within": 10}, ["off", "soon"]),
        ({"within": 30}, ["off", "later", "soon"]),
        ({"status": "ACTIVE", "within": 10}, ["soon"]),
        ({"status": "ACTIVE", "search": "LATE"}, ["later"]),
        ({"status": "EXPIRED", "within": 30}, []),
    ],
)
async def test_api_keys_are_filtered_by_status_and_expiry_with_a_matching_total(
    admin: Api, variables: dict[str, Any], names: list[str]
) -> None:
    await _keys_of_every_status(admin)

    connection = await admin.connection(LIST, "apiKeys", **variables)

    assert [node["name"] for node in connection["nodes"]] == names
    assert connection["totalCount"] == len(names)
    statuses = {node["status"] for node in connection["nodes"]}
    if "status" in variables:
        assert statuses <= {variables["status"]}


async def test_filtered_pages_follow_each_other_and_count_the_filtered_set(admin: Api) -> None:
    for n in range(5):
        await create(admin, name=f"active {n}")
    off = [(await create(admin, name=f"off {n}"))["apiKey"]["id"] for n in range(3)]
    for key_id in off:
        await admin(SET_ENABLED, id=key_id, on=False)

    first = await admin.connection(LIST, "apiKeys", status="ACTIVE", first=2)
    second = await admin.connection(
        LIST, "apiKeys", status="ACTIVE", first=2, after=first["pageInfo"]["endCursor"]
    )
    third = await admin.connection(
        LIST, "apiKeys", status="ACTIVE", first=2, after=second["pageInfo"]["endCursor"]
    )

    names = [node["name"] for page in (first, second, third) for node in page["nodes"]]
    assert names == [f"active {n}" for n in reversed(range(5))]
    assert [page["totalCount"] for page in (first, second, third)] == [5, 5, 5]
    assert third["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize("within", [0, -1, 3651])
async def test_expiring_within_days_out_of_range_is_bad_user_input(admin: Api, within: int) -> None:
    body = await admin(LIST, within=within)
    assert errors_of(body) == [("BAD_USER_INPUT", "expiringWithinDays")]


async def test_a_bad_status_is_refused_by_validation(admin: Api) -> None:
    body = await admin(LIST, status="LOST")
    assert body["data"] is None
    assert len(body["errors"]) == 1


# ---------------------------------------------------- organization settings


async def test_an_admin_sets_and_clears_the_inactivity_limit(admin: Api, member: Api) -> None:
    me = "{ me { organization { keyInactivityDays } } }"
    assert (await admin(me))["data"]["me"]["organization"]["keyInactivityDays"] is None

    set_body = await admin(SETTINGS, input={"keyInactivityDays": 90})
    seen_by_member = await member(me)
    unchanged = await admin(SETTINGS, input={})
    cleared = await admin(SETTINGS, input={"keyInactivityDays": None})

    assert set_body["data"]["setOrganizationSettings"] == {"name": "Acme", "keyInactivityDays": 90}
    assert seen_by_member["data"]["me"]["organization"]["keyInactivityDays"] == 90
    assert unchanged["data"]["setOrganizationSettings"]["keyInactivityDays"] == 90
    assert cleared["data"]["setOrganizationSettings"]["keyInactivityDays"] is None
    assert (await Organization.get(name="Acme")).key_inactivity_days is None
    assert (await admin(me))["data"]["me"]["organization"]["keyInactivityDays"] is None


async def test_the_inactivity_limit_is_shown_in_key_owners_organization(admin: Api) -> None:
    await create(admin)
    await admin(SETTINGS, input={"keyInactivityDays": 30})

    body = await admin("{ apiKeys { nodes { owner { organization { keyInactivityDays } } } } }")

    assert body["data"]["apiKeys"]["nodes"][0]["owner"]["organization"] == {"keyInactivityDays": 30}


@pytest.mark.parametrize("days", [0, -5, 3651])
async def test_an_inactivity_limit_out_of_range_is_bad_user_input_and_changes_nothing(
    admin: Api, days: int
) -> None:
    await admin(SETTINGS, input={"keyInactivityDays": 7})

    body = await admin(SETTINGS, input={"keyInactivityDays": days})

    assert errors_of(body) == [("BAD_USER_INPUT", "input.keyInactivityDays")]
    assert (await Organization.get(name="Acme")).key_inactivity_days == 7


async def test_the_inactivity_limit_of_one_organization_leaves_others_alone(
    admin: Api, other_admin: Api
) -> None:
    await other_admin(SETTINGS, input={"keyInactivityDays": 3650})
    await admin(SETTINGS, input={"keyInactivityDays": 1})

    assert (await Organization.get(name="Globex")).key_inactivity_days == 3650
    assert (await Organization.get(name="Acme")).key_inactivity_days == 1
