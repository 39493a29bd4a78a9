"""The ``auditEvents`` query: newest first, own organization only, by key."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from tortoise.connection import get_connection

from support.gql import Api, errors_of
from wfa_keys.models import User

AUDIT = """
query Audit($first: Int, $after: String, $keyId: ID, $action: AuditAction) {
  auditEvents(first: $first, after: $after, keyId: $keyId, action: $action) {
    nodes { id action keyId actorEmail clientIp createdAt }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}
"""
SET_ENABLED = "mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: false) { id } }"


async def audit(api: Api, **variables: Any) -> dict[str, Any]:
    return await api.connection(AUDIT, "auditEvents", **variables)


async def test_events_are_listed_newest_first_with_who_what_and_where(admin: Api) -> None:
    key_id = (await admin.create_key())["apiKey"]["id"]
    await admin(SET_ENABLED, id=key_id)

    connection = await audit(admin)

    nodes = connection["nodes"]
    assert [node["action"] for node in nodes] == ["KEY_DISABLED", "KEY_CREATED", "LOGIN_SUCCEEDED"]
    assert [node["keyId"] for node in nodes] == [key_id, key_id, None]
    assert {node["actorEmail"] for node in nodes} == {"admin@acme.example"}
    assert {node["clientIp"] for node in nodes} == {"127.0.0.1"}
    assert connection["totalCount"] == 3


async def test_events_of_one_key(admin: Api) -> None:
    wanted = (await admin.create_key("one"))["apiKey"]["id"]
    await admin.create_key("two")
    await admin(SET_ENABLED, id=wanted)

    connection = await audit(admin, keyId=wanted)

    assert [node["action"] for node in connection["nodes"]] == ["KEY_DISABLED", "KEY_CREATED"]
    assert connection["totalCount"] == 2


async def test_events_of_one_action(admin: Api) -> None:
    first = (await admin.create_key("one"))["apiKey"]["id"]
    second = (await admin.create_key("two"))["apiKey"]["id"]
    await admin(SET_ENABLED, id=first)
    await admin(SET_ENABLED, id=second)

    disabled = await audit(admin, action="KEY_DISABLED")
    disabled_first = await audit(admin, action="KEY_DISABLED", keyId=first)

    assert [node["keyId"] for node in disabled["nodes"]] == [second, first]
    assert {node["action"] for node in disabled["nodes"]} == {"KEY_DISABLED"}
    assert disabled["totalCount"] == 2
    assert [node["keyId"] for node in disabled_first["nodes"]] == [first]
    assert disabled_first["totalCount"] == 1


async def test_events_of_deleted_keys_stay_visible(admin: Api) -> None:
    key_id = (await admin.create_key())["apiKey"]["id"]
    await admin("mutation($id: ID!) { deleteApiKey(id: $id) { id } }", id=key_id)

    connection = await audit(admin, keyId=key_id)

    assert [node["action"] for node in connection["nodes"]] == ["KEY_DELETED", "KEY_CREATED"]


async def test_only_the_own_organization_events_are_shown(admin: Api, other_admin: Api) -> None:
    ours = (await admin.create_key())["apiKey"]["id"]
    await other_admin.create_key()

    theirs_for_our_key = await audit(other_admin, keyId=ours)
    all_theirs = await audit(other_admin)

    assert theirs_for_our_key["nodes"] == []
    assert theirs_for_our_key["totalCount"] == 0
    assert {node["actorEmail"] for node in all_theirs["nodes"]} == {"admin@globex.example"}


async def test_events_page_by_cursor(admin: Api) -> None:
    for n in range(3):
        await admin.create_key(f"k{n}")

    first = await audit(admin, first=2)
    second = await audit(admin, first=2, after=first["pageInfo"]["endCursor"])

    assert first["pageInfo"]["hasNextPage"] is True
    assert second["pageInfo"]["hasNextPage"] is False
    ids = [node["id"] for node in first["nodes"] + second["nodes"]]
    assert len(set(ids)) == 4
    assert second["totalCount"] == 4


async def test_audit_log_never_holds_a_secret(admin: Api) -> None:
    created = await admin.create_key()
    response = await admin.post(AUDIT)
    assert created["keySecret"] not in response.text
    assert "$argon2" not in response.text


async def test_bad_arguments_are_bad_user_input(admin: Api) -> None:
    assert errors_of(await admin(AUDIT, keyId="nope")) == [("BAD_USER_INPUT", "keyId")]
    assert errors_of(await admin(AUDIT, first=101)) == [("BAD_USER_INPUT", "first")]
    assert errors_of(await admin(AUDIT, after="zzz")) == [("BAD_USER_INPUT", "after")]
    assert errors_of(await admin(AUDIT, action="NOPE"))


EVENTS = 12_000


async def test_a_total_above_ten_thousand_is_the_planners_estimate_and_below_it_exact(
    admin: Api, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """As ``totalCount``'s description says: exact up to 10,000, the estimate above."""
    if not database_url.startswith("postgres"):
        pytest.skip("the estimate is PostgreSQL's (CI's PostgreSQL pass runs this)")
    user = await User.get(email="admin@acme.example")
    connection = get_connection("default")
    await connection.execute_query(
        "INSERT INTO audit_event (organization_id, actor_id, actor_email, action, key_id, "
        "created_at) SELECT $1, $2, $3, 'key_created', 'wfak_' || lpad(i::text, 20, '0'), "
        "now() - make_interval(secs => i) FROM generate_series(1, $4) AS i",
        [user.organization_id, user.id, user.email, EVENTS],
    )
    # As autovacuum leaves a table: statistics up to date.
    await connection.execute_script("ANALYZE audit_event")

    caplog.set_level(logging.DEBUG, logger="tortoise.db_client")
    everything = (await audit(admin, first=1))["totalCount"]
    estimated = any("EXPLAIN" in record.getMessage() for record in caplog.records)
    caplog.clear()
    one_key = (await audit(admin, first=1, keyId="wfak_00000000000000000012"))["totalCount"]
    counted_only = not any("EXPLAIN" in record.getMessage() for record in caplog.records)

    # The sign-in's event too; the estimate is close, never below the 10,001 rows counted.
    assert estimated
    assert everything > 10_000
    assert abs(everything - (EVENTS + 1)) <= EVENTS // 10
    assert counted_only
    assert one_key == 1
