"""Who may do what: sign-in, admin role, subscription and tenant isolation."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from support.gql import Api, only_error_code
from wfa_keys.models import ApiKey, AuditEvent, Organization

# Every operation that needs an admin; "KEY" is replaced by an existing Key ID.
ADMIN_OPERATIONS = {
    "apiKeys": "{ apiKeys { totalCount } }",
    "apiKey": '{ apiKey(id: "KEY") { id } }',
    "createApiKey": 'mutation { createApiKey(input: {name: "x"}) { keySecret } }',
    "setApiKeyEnabled": 'mutation { setApiKeyEnabled(id: "KEY", enabled: false) { id } }',
    "regenerateApiKey": 'mutation { regenerateApiKey(id: "KEY") { keySecret } }',
    "deleteApiKey": 'mutation { deleteApiKey(id: "KEY") { id } }',
    "auditEvents": '{ auditEvents(keyId: "KEY") { totalCount } }',
    "apiScopes": "{ apiScopes { name } }",
    "updateApiKey": 'mutation { updateApiKey(id: "KEY", input: {scopes: []}) { id } }',
    "regenerateApiKeyWithGrace": (
        'mutation { regenerateApiKey(id: "KEY", gracePeriodMinutes: 60) { keySecret } }'
    ),
    "revokePreviousSecret": 'mutation { revokePreviousSecret(id: "KEY") { id } }',
    "setOrganizationSettings": (
        "mutation { setOrganizationSettings(input: {keyInactivityDays: 1}) { name } }"
    ),
}
# Operations taking the ID of an existing key, and what another organization gets.
BY_ID = {
    "setApiKeyEnabled": ADMIN_OPERATIONS["setApiKeyEnabled"],
    "regenerateApiKey": ADMIN_OPERATIONS["regenerateApiKey"],
    "deleteApiKey": ADMIN_OPERATIONS["deleteApiKey"],
    "updateApiKey": ADMIN_OPERATIONS["updateApiKey"],
    "regenerateApiKeyWithGrace": ADMIN_OPERATIONS["regenerateApiKeyWithGrace"],
    "revokePreviousSecret": ADMIN_OPERATIONS["revokePreviousSecret"],
}
ALL = pytest.mark.parametrize("operation", sorted(ADMIN_OPERATIONS))


async def snapshot() -> tuple[list[dict[str, Any]], list[Any], int]:
    """Every key as stored, the organizations' settings, and how many audit events exist."""
    keys = await ApiKey.all().order_by("id").values()
    settings = await Organization.all().order_by("name").values_list("key_inactivity_days")
    return keys, settings, await AuditEvent.all().count()


@ALL
async def test_anonymous_caller_is_unauthenticated_and_nothing_changes(
    admin: Api, anonymous: Api, operation: str
) -> None:
    key_id = (await admin.create_key())["apiKey"]["id"]
    before = await snapshot()

    body = await anonymous(ADMIN_OPERATIONS[operation].replace("KEY", key_id))

    assert only_error_code(body) == "UNAUTHENTICATED"
    assert await snapshot() == before


@ALL
async def test_member_is_forbidden_and_nothing_changes(
    admin: Api, member: Api, operation: str
) -> None:
    key_id = (await admin.create_key())["apiKey"]["id"]
    before = await snapshot()

    body = await member(ADMIN_OPERATIONS[operation].replace("KEY", key_id))

    assert only_error_code(body) == "FORBIDDEN"
    assert await snapshot() == before


@ALL
async def test_admin_without_subscription_gets_subscription_required(
    unsubscribed_admin: Api, operation: str
) -> None:
    before = await snapshot()

    body = await unsubscribed_admin(ADMIN_OPERATIONS[operation].replace("KEY", "wfak_" + "1" * 20))

    assert only_error_code(body) == "SUBSCRIPTION_REQUIRED"
    assert await snapshot() == before


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Basic {basic}"},
        {"x-api-key-id": "{key_id}", "x-api-key-secret": "{secret}"},
        {"x-api-key": "{key_id}:{secret}"},
    ],
)
async def test_api_key_credentials_never_authenticate_the_admin_api(
    admin: Api, anonymous: Api, headers: dict[str, str]
) -> None:
    created = await admin.create_key()
    values = {
        "key_id": created["apiKey"]["id"],
        "secret": created["keySecret"],
        "basic": base64.b64encode(
            f"{created['apiKey']['id']}:{created['keySecret']}".encode()
        ).decode(),
    }
    filled = {name: value.format(**values) for name, value in headers.items()}

    response = await anonymous.client.post(
        "/graphql",
        json={"query": ADMIN_OPERATIONS["createApiKey"]},
        headers=filled,
    )

    assert only_error_code(response.json()) == "UNAUTHENTICATED"
    assert await ApiKey.all().count() == 1


async def test_bearer_secret_does_not_authenticate_either(admin: Api, anonymous: Api) -> None:
    created = await admin.create_key()
    response = await anonymous.client.post(
        "/graphql",
        json={"query": "{ apiKeys { totalCount } }"},
        headers={"authorization": f"Bearer {created['keySecret']}"},
    )
    assert only_error_code(response.json()) == "UNAUTHENTICATED"


# -------------------------------------------------------------- tenant isolation


@pytest.mark.parametrize("operation", sorted(BY_ID))
async def test_other_organization_gets_not_found_like_for_a_key_that_never_existed(
    admin: Api, other_admin: Api, operation: str
) -> None:
    key_id = (await admin.create_key())["apiKey"]["id"]
    before = await snapshot()

    foreign = await other_admin(BY_ID[operation].replace("KEY", key_id))
    missing = await other_admin(BY_ID[operation].replace("KEY", "wfak_" + "1" * 20))

    assert only_error_code(foreign) == "NOT_FOUND"
    assert foreign["errors"][0]["message"] == missing["errors"][0]["message"]
    assert foreign["data"] == missing["data"]
    assert await snapshot() == before


async def test_other_organization_reads_null_and_an_empty_list(
    admin: Api, other_admin: Api
) -> None:
    key_id = (await admin.create_key())["apiKey"]["id"]

    body = await other_admin(
        f'{{ apiKey(id: "{key_id}") {{ id }} apiKeys {{ totalCount nodes {{ id }} }} }}'
    )

    assert body == {"data": {"apiKey": None, "apiKeys": {"totalCount": 0, "nodes": []}}}


async def test_other_organization_gets_not_found_through_aliases(
    admin: Api, other_admin: Api
) -> None:
    key_id = (await admin.create_key())["apiKey"]["id"]
    await other_admin.create_key("theirs")
    before = await snapshot()

    body = await other_admin(
        f"""mutation {{
          a: setApiKeyEnabled(id: "{key_id}", enabled: false) {{ id }}
          b: regenerateApiKey(id: "{key_id}") {{ keySecret }}
          c: deleteApiKey(id: "{key_id}") {{ id }}
        }}"""
    )

    # Mutation fields run one after the other and stop at the first (non-null) failure.
    assert [error["extensions"]["code"] for error in body["errors"]] == ["NOT_FOUND"]
    assert body["data"] is None
    assert await snapshot() == before


async def test_other_organization_gets_not_found_through_fragments(
    admin: Api, other_admin: Api
) -> None:
    key_id = (await admin.create_key())["apiKey"]["id"]
    before = await snapshot()

    body = await other_admin(
        f"""mutation {{ ...Wipe }}
        fragment Wipe on Mutation {{
          first: deleteApiKey(id: "{key_id}") {{ ...Deleted }}
          ... on Mutation {{ second: regenerateApiKey(id: "{key_id}") {{ keySecret }} }}
        }}
        fragment Deleted on DeletedApiKey {{ id }}"""
    )

    assert [error["extensions"]["code"] for error in body["errors"]] == ["NOT_FOUND"]
    assert await snapshot() == before


async def test_other_organization_reads_null_through_aliases_and_fragments(
    admin: Api, other_admin: Api
) -> None:
    key_id = (await admin.create_key())["apiKey"]["id"]

    body = await other_admin(
        f"""{{ a: apiKey(id: "{key_id}") {{ ...Key }} b: apiKey(id: "{key_id}") {{ id }} }}
        fragment Key on ApiKey {{ id name }}"""
    )

    assert body == {"data": {"a": None, "b": None}}


async def test_admin_lists_only_the_own_organization_keys(admin: Api, other_admin: Api) -> None:
    ours = (await admin.create_key("ours"))["apiKey"]["id"]
    await other_admin.create_key("theirs")

    body = await admin("{ apiKeys { totalCount nodes { id } } }")

    assert body["data"]["apiKeys"] == {"totalCount": 1, "nodes": [{"id": ours}]}
